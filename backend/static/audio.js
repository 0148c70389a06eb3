// Microphone capture (AudioWorklet -> 16 kHz PCM16 frames) and gapless playback of the mentor's reply audio.

export const MIC_RATE = 16000;
const FRAME_MS = 40;
const START_LEAD_S = 0.06; // first buffer of a reply starts this far ahead: absorbs network jitter

export class Microphone {
  constructor(ctx, { onFrame, onLevel }) {
    this.ctx = ctx;
    this.onFrame = onFrame;
    this.onLevel = onLevel;
    this.stream = null;
    this.node = null;
    this.source = null;
  }

  async start() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      const err = new Error('This browser cannot use a microphone here (it needs HTTPS or localhost).');
      err.name = 'InsecureContextError';
      throw err;
    }
    // Echo cancellation keeps the mentor's own voice from barging in. Chromium's gain control and noise
    // suppression stay off: on speech through its fake microphone, AGC clipped it and NS (with echo
    // cancellation) garbled words enough to change Whisper's transcript; Silero and Whisper handle level and
    // background noise themselves.
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: false },
    });
    await this.ctx.audioWorklet.addModule('/static/mic-worklet.js');
    this.source = this.ctx.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(this.ctx, 'mic-capture', {
      numberOfInputs: 1,
      numberOfOutputs: 0,
      channelCount: 1,
      channelCountMode: 'explicit',
      processorOptions: { targetRate: MIC_RATE, frameMs: FRAME_MS },
    });
    this.node.port.onmessage = (e) => {
      this.onLevel(e.data.level);
      this.onFrame(e.data.pcm);
    };
    this.source.connect(this.node);
  }

  stop() {
    if (this.source) this.source.disconnect();
    if (this.node) {
      this.node.port.onmessage = null;
      this.node.disconnect();
    }
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    this.stream = this.node = this.source = null;
  }
}

// Reply audio: every binary frame becomes an AudioBuffer scheduled right after the previous one, so frames of
// any size play back to back with no gap; stop() silences everything already scheduled at once (barge-in).
export class Player {
  constructor(ctx, { onDrained }) {
    this.ctx = ctx;
    this.onDrained = onDrained;
    this.out = ctx.createGain();
    this.out.connect(ctx.destination);
    this.sources = new Set();
    this.segments = []; // {start, dur} of the current turn, in context time
    this.turnId = null;
    this.rate = null;
    this.nextTime = 0;
    this.accepting = false;
    this.ended = false; // audio_end seen for the current turn
    this.framesScheduled = 0;
    this.framesPlayed = 0;
  }

  begin(turnId, rate) {
    if (this.turnId !== turnId) this.stop();
    this.turnId = turnId;
    this.rate = rate;
    this.segments = [];
    this.nextTime = 0;
    this.accepting = true;
    this.ended = false;
  }

  // Schedules one PCM16LE frame; false when no reply is accepting audio (e.g. after an interruption).
  push(data) {
    if (!this.accepting || !this.rate) return false;
    const view = new DataView(data);
    const n = Math.floor(data.byteLength / 2);
    if (n === 0) return true;
    const buffer = this.ctx.createBuffer(1, n, this.rate);
    const ch = buffer.getChannelData(0);
    for (let i = 0; i < n; i++) ch[i] = view.getInt16(i * 2, true) / 32768;
    const src = this.ctx.createBufferSource();
    src.buffer = buffer;
    src.connect(this.out);
    const start = Math.max(this.nextTime, this.ctx.currentTime + START_LEAD_S);
    src.start(start);
    this.nextTime = start + buffer.duration;
    this.segments.push({ start, dur: buffer.duration });
    this.sources.add(src);
    this.framesScheduled += 1;
    src.onended = () => {
      if (!this.sources.delete(src)) return; // stopped: not played
      this.framesPlayed += 1;
      // a version 1 server sends no audio_end: its reply is over when nothing is left to play
      if (this.sources.size === 0 && (this.ended || this.turnId === null)) this.onDrained(this.turnId);
    };
    return true;
  }

  finish() {
    this.ended = true;
    if (this.sources.size === 0) this.onDrained(this.turnId);
  }

  // Milliseconds of the current turn's audio the user has actually heard.
  playedMs() {
    const now = this.ctx.currentTime;
    let ms = 0;
    for (const s of this.segments) ms += Math.min(Math.max(now - s.start, 0), s.dur);
    return Math.round(ms * 1000);
  }

  get playing() {
    return this.sources.size > 0;
  }

  // Stops every scheduled buffer now; returns how many were cut. Later frames are refused until begin().
  stop() {
    const cut = this.sources.size;
    for (const src of this.sources) {
      src.onended = null;
      try {
        src.stop();
      } catch {
        // never started: nothing to stop
      }
      src.disconnect();
    }
    this.sources.clear();
    this.accepting = false;
    this.nextTime = 0;
    return cut;
  }
}
