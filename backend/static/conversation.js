// The conversation view: one card per turn (what you said, how it read emotionally, the mentor's reply,
// the turn's latency) plus the session's emotion timeline. Turn records are plain data, shared with tests.

import { renderTimeline } from './chart.js';

function pct(x) {
  return `${Math.round((Number(x) || 0) * 100)}%`;
}

function ms(x) {
  if (x === null || x === undefined) return null;
  return x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${Math.round(x)} ms`;
}

function signed(x) {
  const v = Number(x) || 0;
  return `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(2)}`;
}

function node(tag, className, text) {
  const n = document.createElement(tag);
  if (className) n.className = className;
  if (text !== undefined) n.textContent = text;
  return n;
}

export class Conversation {
  constructor(container, chart, records) {
    this.container = container;
    this.chart = chart;
    this.records = records; // window.__clarity.turns: the list tests read
    this.cards = new Map();
    this.points = [];
    this.clear();
  }

  clear() {
    this.cards.clear();
    this.records.length = 0;
    this.points = [];
    this.container.replaceChildren(
      Object.assign(node('p', 'empty'), {
        innerHTML: 'Press <strong>Start conversation</strong> and say what is on your mind.',
      }),
    );
    renderTimeline(this.chart, this.points);
  }

  has(turnId) {
    return this.cards.has(turnId);
  }

  record(turnId) {
    const card = this.cards.get(turnId);
    return card ? card.record : null;
  }

  ensure(turnId) {
    if (this.cards.has(turnId)) return this.cards.get(turnId);
    const empty = this.container.querySelector('.empty');
    if (empty) empty.remove();
    const record = {
      turn_id: turnId,
      transcript: '',
      emotion: null,
      reply: '',
      final: false,
      safety: null,
      interrupted: false,
      heard_text: null,
      metrics: null,
      audioStarted: false,
      framesScheduled: 0,
      framesCut: 0,
      framesAfterInterrupt: 0,
      ended: false,
    };
    const article = node('article', 'turn');
    article.dataset.turnId = turnId;
    article.setAttribute('aria-label', `Turn ${this.cards.size + 1}`);
    const user = node('div', 'bubble user');
    user.append(node('span', 'who', 'You'));
    const transcript = node('p', 'text transcript', '…');
    user.append(transcript);
    const emotion = node('div', 'emotion-line');
    emotion.hidden = true;
    const mentor = node('div', 'bubble mentor');
    const safety = node('p', 'safety-note');
    safety.hidden = true;
    mentor.append(node('span', 'who', 'Mentor'), safety);
    const reply = node('p', 'text reply');
    const state = node('p', 'turn-state');
    state.hidden = true;
    mentor.append(reply, state);
    mentor.hidden = true;
    const metrics = node('p', 'metrics');
    metrics.hidden = true;
    article.append(user, emotion, mentor, metrics);
    this.container.append(article);
    const card = { record, article, transcript, emotion, mentor, safety, reply, state, metrics };
    this.cards.set(turnId, card);
    this.records.push(record);
    return card;
  }

  setTranscript(turnId, text) {
    const card = this.ensure(turnId);
    card.record.transcript = text;
    card.transcript.textContent = text;
  }

  setEmotion(turnId, data) {
    const card = this.ensure(turnId);
    card.record.emotion = data;
    this.renderEmotion(card, data);
    this.points.push({ label: data.primary_emotion, confidence: data.confidence });
    renderTimeline(this.chart, this.points);
  }

  renderEmotion(card, data) {
    const line = card.emotion;
    line.replaceChildren();
    const label = data.primary_emotion;
    const chip = node('span', `chip emo emo-${label}`, `${label} ${pct(data.confidence)}`);
    chip.title = 'Fused emotion (words and voice)';
    line.append(chip);
    const parts = [];
    if (data.text) parts.push(`words: ${data.text.primary_emotion} ${pct(data.text.confidence)}`);
    if (data.speech) {
      parts.push(
        `voice: energy ${signed(data.speech.arousal)}, tone ${signed(data.speech.valence)}` +
          ` (confidence ${pct(data.speech.confidence)})`,
      );
    }
    if (parts.length) line.append(node('span', 'channels', parts.join(' · ')));
    if (data.incongruent) {
      line.append(node('span', 'chip warn', 'words and voice differ'));
      card.article.classList.add('incongruent');
    }
    line.hidden = false;
  }

  setSafety(turnId, category) {
    const card = this.ensure(turnId);
    card.record.safety = category || 'crisis';
    card.article.classList.add('safety');
    card.mentor.setAttribute('role', 'note');
    card.mentor.setAttribute('aria-label', 'Support resources');
    card.safety.textContent = 'You are not alone. This reply lists people you can reach right now.';
    card.safety.hidden = false;
    card.mentor.hidden = false;
  }

  appendReply(turnId, delta) {
    const card = this.ensure(turnId);
    card.record.reply += delta;
    card.reply.textContent = card.record.reply;
    card.mentor.hidden = false;
  }

  setReply(turnId, text) {
    const card = this.ensure(turnId);
    card.record.reply = text;
    card.record.final = true;
    card.reply.textContent = text;
    card.mentor.hidden = false;
  }

  setState(turnId, text, kind) {
    const card = this.cards.get(turnId);
    if (!card) return;
    card.state.textContent = text;
    card.state.className = `turn-state ${kind || ''}`;
    card.state.hidden = false;
    card.mentor.hidden = false;
  }

  setInterrupted(turnId, heardText, reason, framesCut) {
    const card = this.ensure(turnId);
    Object.assign(card.record, { interrupted: true, heard_text: heardText, framesCut });
    card.article.classList.add('interrupted');
    const reply = card.record.reply;
    if (heardText && reply.startsWith(heardText) && reply.length > heardText.length) {
      // what the user never heard stays readable, but set apart
      const unheard = node('span', 'unheard', reply.slice(heardText.length));
      unheard.title = 'Not spoken: you interrupted here';
      card.reply.replaceChildren(document.createTextNode(heardText), unheard);
    }
    const who = reason === 'client' ? 'You stopped the mentor' : 'You spoke, so the mentor stopped';
    this.setState(turnId, heardText ? `Interrupted. ${who} after: “${heardText}”` : `Interrupted. ${who}.`, 'cut');
  }

  setMetrics(turnId, m) {
    const card = this.ensure(turnId);
    card.record.metrics = m;
    const parts = [
      ['voice to voice', ms(m.voice_to_voice_ms)],
      ['speech to text', m.transcript_reused ? 'reused from the pause' : ms(m.stt_ms)],
      ['emotion', ms(m.emotion_ms)],
      ['first token', ms(m.llm_first_token_ms)],
      ['first audio', ms(m.tts_first_audio_ms)],
    ].filter(([, v]) => v !== null);
    const text = parts.map(([k, v]) => `${k} ${v}`).join(' · ');
    card.metrics.textContent = `Latency: ${text || 'n/a'}${m.tokens ? ` · ${m.tokens} tokens` : ''}`;
    card.metrics.hidden = false;
  }

  end(turnId) {
    const card = this.cards.get(turnId);
    if (card) card.record.ended = true;
  }

  // A stored session's history: user/assistant turns from GET /api/sessions/{id}/history.
  showHistory(history) {
    this.clear();
    let current = null;
    let n = 0;
    for (const t of history.turns || []) {
      if (t.role === 'user' || !current) {
        n += 1;
        current = `history-${n}`;
      }
      if (t.safety) this.setSafety(current, 'crisis');
      if (t.role === 'user') {
        this.setTranscript(current, t.content);
        if (t.emotion) {
          this.setEmotion(current, { primary_emotion: t.emotion.primary_emotion, confidence: t.emotion.confidence });
        }
      } else {
        this.setReply(current, t.content);
        if (t.interrupted) this.setState(current, 'Interrupted: only this part was heard.', 'cut');
      }
      const card = this.cards.get(current);
      if (card) card.record.ended = true;
    }
    if (!n) this.container.replaceChildren(node('p', 'empty', 'This session has no turns yet.'));
  }
}
