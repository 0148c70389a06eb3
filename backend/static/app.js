// ClarityMentor web client: microphone -> /ws/voice -> transcript, emotion, streamed reply and its voice.
// Protocol: docs/websocket.md. Tests read window.__clarity (turn records, frame counters, errors).

import { api, ApiError, getApiKey, setApiKey } from './api.js';
import { MIC_RATE, Microphone, Player } from './audio.js';
import { Conversation } from './conversation.js';

const ACK_EVERY_MS = 250;
const MAX_PENDING_FRAMES = 50; // ~2 s of microphone audio kept while the socket (re)connects
const MAX_SOCKET_BUFFER = 1 << 20; // bytes; above this, microphone frames are dropped (slow network)
const KNOWN_SESSIONS = 'claritymentor.sessions';
const KEEPALIVE_MS = 60000; // a ping now and then: push-to-talk can be silent longer than the server's idle timeout
const CLOSE_POLICY = 1008; // the server's close code for a missing or wrong API key (4401 on older servers)

const $ = (id) => document.getElementById(id);
const els = {
  main: $('main-button'),
  mainLabel: $('main-label'),
  talk: $('talk-button'),
  status: $('status'),
  level: $('mic-level'),
  partial: $('partial'),
  keyForm: $('key-form'),
  keyInput: $('api-key'),
  conversation: $('conversation'),
  chart: $('chart'),
  sessionLabel: $('session-label'),
  sessionList: $('session-list'),
  sessionsNote: $('sessions-note'),
  newSession: $('new-session'),
};

const probe = {
  state: 'idle',
  states: [], // every change of state, in order (capped)
  turns: [],
  errors: [],
  serverErrors: [],
  events: [],
  interrupted: [],
  framesScheduled: 0,
  framesAfterInterrupt: 0,
  sessionId: null,
  get framesPlayed() {
    return player ? player.framesPlayed : 0;
  },
  get playing() {
    return player ? player.playing : false;
  },
};
window.__clarity = probe;
window.addEventListener('error', (e) => probe.errors.push(String(e.message || e)));
window.addEventListener('unhandledrejection', (e) => probe.errors.push(String(e.reason)));

const conversation = new Conversation(els.conversation, els.chart, probe.turns);
let mode = 'hands-free';
let running = false;
let talking = false;
let ctx = null;
let mic = null;
let player = null;
let ws = null;
let wsReady = false;
let pending = [];
let attempt = 0;
let reconnectTimer = null;
let ackTimer = null;
let sessionId = null;
let sessionsTimer = null;
let keepalive = null;
let authRejected = false;
let thinkingTimer = null;
let lastEventAt = 0;
let outputRate = 22050; // from `ready`: the rate of reply audio when a (version 1) server sends no audio_start

// ---- state shown to the user ---------------------------------------------------------------------------------
function setState(state, message) {
  if (probe.state !== state) probe.states.push(state);
  if (probe.states.length > 200) probe.states.splice(0, 100);
  probe.state = state;
  document.body.dataset.state = state;
  if (message !== undefined && els.status.textContent !== message) els.status.textContent = message;
}

function listening() {
  if (!running) return;
  if (mode === 'hands-free') setState('listening', 'Listening… speak whenever you are ready.');
  else if (talking) setState('listening', 'Listening… release to send.');
  else setState('listening', 'Hold the talk button or Space to speak.');
}

function setMainButton() {
  els.mainLabel.textContent = running ? 'Stop conversation' : 'Start conversation';
  els.talk.hidden = mode !== 'push-to-talk';
  els.talk.disabled = !running;
}

function setSession(id) {
  sessionId = id;
  probe.sessionId = id;
  els.sessionLabel.textContent = id ? `Session ${id.slice(0, 8)}` : 'New session';
  for (const li of els.sessionList.children) {
    if (li.dataset.sessionId === id) li.setAttribute('aria-current', 'true');
    else li.removeAttribute('aria-current');
  }
}

// ---- start / stop --------------------------------------------------------------------------------------------
async function start() {
  running = true;
  setMainButton();
  els.keyForm.hidden = true;
  setState('connecting', 'Starting the microphone…');
  try {
    ctx = ctx || new AudioContext({ latencyHint: 'interactive' });
    await ctx.resume();
    if (!running) return;
    player = player || new Player(ctx, { onDrained });
    const opened = new Microphone(ctx, { onFrame, onLevel: (v) => (els.level.value = Math.min(1, v * 4)) });
    mic = opened;
    await opened.start();
    if (mic !== opened) {
      opened.stop(); // stopped while the permission prompt was open
      return;
    }
  } catch (err) {
    if (!running) return;
    stop(false);
    const denied = err && (err.name === 'NotAllowedError' || err.name === 'SecurityError');
    const missing = err && err.name === 'NotFoundError';
    setState(
      'error',
      denied
        ? 'Microphone access was denied. Allow it in the browser’s site settings, then press Start again.'
        : missing
          ? 'No microphone was found. Connect one and press Start again.'
          : `The microphone could not start: ${(err && err.message) || err}`,
    );
    return;
  }
  attempt = 0;
  clearInterval(keepalive);
  keepalive = setInterval(() => send({ type: 'ping' }), KEEPALIVE_MS);
  connect();
}

function stop(announce = true) {
  running = false;
  talking = false;
  clearTimeout(reconnectTimer);
  clearInterval(keepalive);
  stopAcks();
  if (ws) {
    const sock = ws;
    ws = null;
    sock.close(1000, 'client stopped');
  }
  wsReady = false;
  pending = [];
  if (mic) mic.stop();
  mic = null;
  if (player) player.stop();
  els.level.value = 0;
  els.partial.textContent = '';
  setMainButton();
  if (announce) setState('idle', 'Stopped. Press Start to talk again.');
  scheduleSessionsRefresh(0);
}

// ---- the socket ----------------------------------------------------------------------------------------------
function connect() {
  const url = new URL('/ws/voice', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  if (sessionId) url.searchParams.set('session_id', sessionId);
  if (attempt === 0) setState('connecting', 'Connecting…');
  const sock = new WebSocket(url);
  sock.binaryType = 'arraybuffer';
  sock.configured = false;
  ws = sock;
  wsReady = false;
  authRejected = false;
  sock.onopen = () => {
    const key = getApiKey();
    if (key) sock.send(JSON.stringify({ type: 'auth', api_key: key }));
  };
  sock.onmessage = (e) => {
    if (sock !== ws) return;
    if (typeof e.data === 'string') onEvent(sock, JSON.parse(e.data));
    else onAudio(e.data);
  };
  sock.onclose = (e) => {
    if (sock === ws) onClose(e);
  };
}

function send(obj) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
}

function onClose(e) {
  ws = null;
  wsReady = false;
  stopAcks();
  if (player) player.stop();
  if (!running) return;
  if (e.code === 4401 || authRejected || (e.code === CLOSE_POLICY && e.reason === 'unauthorized')) {
    stop(false);
    els.keyForm.hidden = false;
    setState('error', 'This server needs an API key. Enter it below, then press Start again.');
    els.keyInput.focus();
    return;
  }
  if (e.code === 4404) {
    setSession(null);
    setState('connecting', 'That session no longer exists; starting a new one…');
    connect();
    return;
  }
  const delay = Math.min(15000, 500 * 2 ** attempt) * (0.8 + 0.4 * Math.random());
  attempt += 1;
  const seconds = Math.max(1, Math.round(delay / 1000));
  setState('reconnecting', `Connection to the server lost. Reconnecting in ${seconds} s…`);
  clearTimeout(reconnectTimer);
  reconnectTimer = setTimeout(() => running && connect(), delay);
}

function onFrame(pcm) {
  if (!running || (mode === 'push-to-talk' && !talking)) return;
  if (ws && wsReady && ws.readyState === WebSocket.OPEN) {
    if (ws.bufferedAmount < MAX_SOCKET_BUFFER) ws.send(pcm);
  } else {
    pending.push(pcm);
    if (pending.length > MAX_PENDING_FRAMES) pending.shift();
  }
}

function onEvent(sock, msg) {
  lastEventAt = Date.now();
  probe.events.push(msg.type);
  if (probe.events.length > 1000) probe.events.splice(0, 500);
  const id = msg.turn_id;
  switch (msg.type) {
    case 'ready':
      setSession(msg.session_id);
      rememberSession(msg.session_id);
      if (msg.output_sample_rate) outputRate = msg.output_sample_rate;
      if (!sock.configured) {
        sock.configured = true;
        send({ type: 'config', sample_rate: MIC_RATE });
        wsReady = true;
        attempt = 0;
        for (const frame of pending) sock.send(frame);
        pending = [];
        listening();
        scheduleSessionsRefresh(500); // a new session exists on the server from now on
      }
      break;
    case 'partial_transcript':
      els.partial.textContent = msg.text;
      break;
    case 'status':
      if (id && !conversation.has(id)) newTurn(id);
      if (probe.state !== 'speaking') setState('thinking', msg.message.replace(/\.\.\.$/, '…'));
      break;
    case 'transcript':
      if (!conversation.has(id)) newTurn(id);
      conversation.setTranscript(id, msg.text);
      els.partial.textContent = '';
      break;
    case 'emotion':
      conversation.setEmotion(id, msg.data);
      break;
    case 'safety':
      conversation.setSafety(id, msg.category);
      break;
    case 'response_delta':
      conversation.appendReply(id, msg.text);
      break;
    case 'response':
      conversation.setReply(id, msg.text);
      break;
    case 'audio_start':
      player.begin(id, msg.sample_rate);
      conversation.ensure(id).record.audioStarted = true;
      break;
    case 'audio_end':
      if (player.turnId === id) player.finish();
      break;
    case 'interrupted': {
      const mine = player.turnId === id;
      const heardMs = mine ? player.playedMs() : 0;
      const cut = mine ? player.stop() : 0;
      stopAcks();
      probe.interrupted.push(id);
      conversation.setInterrupted(id, msg.heard_text, msg.reason, cut);
      const rec = conversation.record(id);
      Object.assign(rec, {
        playedMsAtInterrupt: heardMs,
        framesAtInterrupt: rec.framesScheduled,
        playingAfterStop: player.playing,
      });
      listening();
      break;
    }
    case 'metrics':
      conversation.setMetrics(id, msg);
      break;
    case 'turn_end':
      conversation.end(id);
      if (!player.playing) listening();
      scheduleSessionsRefresh(300);
      break;
    case 'error':
      onServerError(msg);
      break;
    default:
      break; // pong, and message types newer than this page
  }
}

function newTurn(id) {
  conversation.ensure(id);
  els.conversation.lastElementChild.scrollIntoView({ block: 'nearest' });
}

function onServerError(msg) {
  probe.serverErrors.push({ code: msg.code, message: msg.message });
  if (msg.code === 'unauthorized') {
    authRejected = true;
    els.keyForm.hidden = false;
    return; // the close (1008) that follows says the rest
  }
  if (msg.code === 'no_speech') {
    if (running) setState('listening', 'I didn’t catch any words there. Try again?');
    return;
  }
  if (msg.code === 'session_not_found' || msg.code === 'already_authenticated') return; // close code says it / harmless
  if (msg.turn_id) conversation.setState(msg.turn_id, `Something went wrong: ${msg.message}`, 'error');
  setState(running ? 'listening' : 'idle', `Server: ${msg.message}`);
}

// ---- reply audio ---------------------------------------------------------------------------------------------
function onAudio(data) {
  if (!player) return;
  if (!player.accepting && player.turnId === null) player.begin(null, outputRate); // a v1 server: no audio_start
  const rec = player.turnId ? conversation.record(player.turnId) : null;
  if (player.push(data)) {
    probe.framesScheduled += 1;
    if (rec) rec.framesScheduled += 1;
    if (probe.state !== 'speaking') setState('speaking', 'Speaking…');
    startAcks();
  } else if (rec && rec.interrupted) {
    rec.framesAfterInterrupt += 1;
    probe.framesAfterInterrupt += 1;
  }
}

function sendAck() {
  if (player && player.turnId) send({ type: 'playback', played_ms: player.playedMs(), turn_id: player.turnId });
}

function startAcks() {
  if (!ackTimer) ackTimer = setInterval(sendAck, ACK_EVERY_MS);
}

function stopAcks() {
  clearInterval(ackTimer);
  ackTimer = null;
}

function onDrained() {
  sendAck();
  stopAcks();
  if (running) listening();
}

// ---- push-to-talk --------------------------------------------------------------------------------------------
function beginTalk() {
  if (!running || talking) return;
  talking = true;
  els.talk.setAttribute('aria-pressed', 'true');
  if (player && player.playing) {
    send({ type: 'interrupt' }); // talking over the mentor: stop it now
    const old = player.turnId;
    const cut = player.stop();
    stopAcks();
    const rec = conversation.record(old);
    if (rec) rec.framesCut = cut;
  }
  listening();
}

function endTalk() {
  if (!talking) return;
  talking = false;
  els.talk.setAttribute('aria-pressed', 'false');
  send({ type: 'end_of_speech' });
  if (player && player.playing) return setState('speaking', 'Speaking…');
  setState('thinking', 'Thinking…');
  // Nothing may come back (the server's VAD already ended the turn, or there was no speech): don't hang here.
  const sentAt = Date.now();
  clearTimeout(thinkingTimer);
  thinkingTimer = setTimeout(() => {
    if (probe.state === 'thinking' && lastEventAt < sentAt) listening();
  }, 5000);
}

function typingInField(e) {
  const t = e.target;
  const text = t && t.tagName === 'INPUT' && !['radio', 'checkbox', 'button', 'submit'].includes(t.type);
  return Boolean(text || (t && (t.tagName === 'TEXTAREA' || t.isContentEditable)));
}

// ---- past sessions -------------------------------------------------------------------------------------------
function knownSessions() {
  try {
    return JSON.parse(localStorage.getItem(KNOWN_SESSIONS) || '[]');
  } catch {
    return [];
  }
}

function saveKnown(list) {
  try {
    localStorage.setItem(KNOWN_SESSIONS, JSON.stringify(list.slice(0, 50)));
  } catch {
    // storage unavailable: the list lasts for this page only
  }
}

function rememberSession(id) {
  const now = new Date().toISOString();
  const list = knownSessions().filter((s) => s.session_id !== id);
  const old = knownSessions().find((s) => s.session_id === id);
  list.unshift({ session_id: id, created_at: (old && old.created_at) || now, updated_at: now });
  saveKnown(list);
}

function forgetSession(id) {
  saveKnown(knownSessions().filter((s) => s.session_id !== id));
}

function scheduleSessionsRefresh(delay) {
  clearTimeout(sessionsTimer);
  sessionsTimer = setTimeout(refreshSessions, delay);
}

function note(text) {
  els.sessionsNote.textContent = text || '';
  els.sessionsNote.hidden = !text;
}

function onApiError(err, what) {
  if (err instanceof ApiError && err.status === 401) {
    els.keyForm.hidden = false;
    note(`An API key is needed to ${what}.`);
  } else if (err instanceof ApiError && err.status === 0) {
    note(`The server cannot be reached, so I could not ${what}.`);
  } else {
    note(`Could not ${what}: ${err.message}`);
  }
}

async function refreshSessions() {
  let sessions;
  try {
    sessions = (await api.listSessions()).sessions || [];
    note('');
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) {
      onApiError(err, 'list past sessions');
      return;
    }
    sessions = knownSessions(); // the server has no list route: the sessions used in this browser
    note('This server does not list sessions; showing the ones used in this browser.');
  }
  sessions.sort((a, b) => String(b.updated_at || b.created_at).localeCompare(String(a.updated_at || a.created_at)));
  renderSessions(sessions);
}

function renderSessions(sessions) {
  els.sessionList.replaceChildren();
  if (!sessions.length) {
    const li = document.createElement('li');
    li.className = 'empty';
    li.textContent = 'No past sessions yet.';
    els.sessionList.append(li);
    return;
  }
  for (const s of sessions) {
    const when = new Date(s.updated_at || s.created_at);
    const label = Number.isNaN(when.getTime()) ? s.session_id.slice(0, 8) : when.toLocaleString();
    const li = document.createElement('li');
    li.dataset.sessionId = s.session_id;
    if (s.session_id === sessionId) li.setAttribute('aria-current', 'true');
    const open = document.createElement('button');
    open.type = 'button';
    open.className = 'open';
    const turns = s.turns !== undefined ? ` · ${s.turns} message${s.turns === 1 ? '' : 's'}` : '';
    open.textContent = `${label}${turns}`;
    open.setAttribute('aria-label', `Open session from ${label}${turns}`);
    open.addEventListener('click', () => openSession(s.session_id));
    const del = document.createElement('button');
    del.type = 'button';
    del.className = 'delete';
    del.textContent = 'Delete';
    del.setAttribute('aria-label', `Delete session from ${label}`);
    del.addEventListener('click', () => {
      if (del.dataset.armed) return deleteSession(s.session_id);
      del.dataset.armed = '1';
      del.textContent = 'Confirm delete';
      del.setAttribute('aria-label', `Confirm: delete session from ${label}`);
      setTimeout(() => {
        delete del.dataset.armed;
        del.textContent = 'Delete';
        del.setAttribute('aria-label', `Delete session from ${label}`);
      }, 5000);
    });
    li.append(open, del);
    els.sessionList.append(li);
  }
}

async function openSession(id) {
  if (running) stop(false);
  try {
    const history = await api.history(id);
    conversation.showHistory(history);
    setSession(id);
    setState('idle', 'Past session opened. Press Start to continue it.');
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      forgetSession(id);
      note('That session no longer exists.');
      scheduleSessionsRefresh(0);
    } else onApiError(err, 'open the session');
  }
}

async function deleteSession(id) {
  try {
    await api.deleteSession(id);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) return onApiError(err, 'delete the session');
  }
  forgetSession(id);
  if (id === sessionId) {
    if (running) stop(false);
    setSession(null);
    conversation.clear();
  }
  setState(probe.state, 'Session deleted.');
  await refreshSessions();
}

async function newSession() {
  if (running) stop(false);
  conversation.clear();
  try {
    const created = await api.createSession();
    setSession(created.session_id);
    rememberSession(created.session_id);
  } catch (err) {
    setSession(null); // the server makes one when the conversation starts
    if (!(err instanceof ApiError && err.status === 404)) onApiError(err, 'create a session');
  }
  setState('idle', 'New session. Press Start when you are ready.');
  await refreshSessions();
}

// ---- wiring --------------------------------------------------------------------------------------------------
els.main.addEventListener('click', () => (running ? stop() : start()));
els.newSession.addEventListener('click', newSession);
for (const radio of document.querySelectorAll('input[name="mode"]')) {
  radio.addEventListener('change', () => {
    if (!radio.checked) return;
    if (talking) endTalk();
    mode = radio.value;
    setMainButton();
    listening();
  });
}
els.talk.addEventListener('pointerdown', (e) => {
  els.talk.setPointerCapture(e.pointerId);
  beginTalk();
});
for (const type of ['pointerup', 'pointercancel', 'lostpointercapture']) els.talk.addEventListener(type, endTalk);
// Push-to-talk: Space anywhere but a text field talks (the focused button is not pressed); Enter still presses.
document.addEventListener('keydown', (e) => {
  if (e.code !== 'Space' || mode !== 'push-to-talk' || !running || typingInField(e)) return;
  e.preventDefault();
  if (!e.repeat) beginTalk();
});
document.addEventListener('keyup', (e) => {
  if (e.code !== 'Space' || mode !== 'push-to-talk' || typingInField(e) || (!running && !talking)) return;
  e.preventDefault();
  endTalk();
});
els.keyForm.addEventListener('submit', (e) => {
  e.preventDefault();
  setApiKey(els.keyInput.value.trim());
  els.keyForm.hidden = true;
  setState('idle', 'Key saved. Press Start to talk.');
  scheduleSessionsRefresh(0);
});
els.keyInput.value = getApiKey();
setSession(null);
setMainButton();
refreshSessions();
