// AudioWorklet: microphone at the context's rate -> 16 kHz mono PCM16 little-endian frames for /ws/voice.
// Downsampling low-pass filters (windowed sinc) and reads the filtered signal at fractional steps, computing the
// filter only where an output sample needs it, so 44.1 and 48 kHz devices give the same clean 16 kHz the
// server's VAD and Whisper expect.

const TAPS = 63;
const HALF = (TAPS - 1) / 2;

function lowpass(cutoff) {
  // cutoff in cycles per input sample (0..0.5); Blackman-windowed sinc, unity gain at DC
  const h = new Float32Array(TAPS);
  const mid = (TAPS - 1) / 2;
  let sum = 0;
  for (let i = 0; i < TAPS; i++) {
    const n = i - mid;
    const sinc = n === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * n) / (Math.PI * n);
    const w = 0.42 - 0.5 * Math.cos((2 * Math.PI * i) / (TAPS - 1)) + 0.08 * Math.cos((4 * Math.PI * i) / (TAPS - 1));
    h[i] = sinc * w;
    sum += h[i];
  }
  for (let i = 0; i < TAPS; i++) h[i] /= sum;
  return h;
}

class MicCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.outRate = opts.targetRate || 16000;
    this.step = sampleRate / this.outRate; // input samples per output sample
    this.frameSamples = Math.round((this.outRate * (opts.frameMs || 40)) / 1000);
    this.kernel = this.step > 1 ? lowpass((0.5 / this.step) * 0.94) : null;
    this.input = new Float32Array(HALF); // unconsumed input, led by HALF samples of history for the filter
    this.pos = HALF; // fractional read position into `input`
    this.frame = new DataView(new ArrayBuffer(this.frameSamples * 2));
    this.filled = 0;
    this.energy = 0;
  }

  push(sample) {
    const s = Math.max(-1, Math.min(1, sample));
    this.frame.setInt16(this.filled * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    this.energy += s * s;
    this.filled += 1;
    if (this.filled === this.frameSamples) {
      const buffer = this.frame.buffer;
      const level = Math.sqrt(this.energy / this.frameSamples);
      this.port.postMessage({ pcm: buffer, level }, [buffer]);
      this.frame = new DataView(new ArrayBuffer(this.frameSamples * 2));
      this.filled = 0;
      this.energy = 0;
    }
  }

  // Input sample k, low-pass filtered (centred FIR: needs HALF samples either side).
  at(k) {
    if (!this.kernel) return this.input[k];
    const x = this.input;
    const h = this.kernel;
    let acc = 0;
    for (let j = 0; j < TAPS; j++) acc += h[j] * x[k - HALF + j];
    return acc;
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0 || input[0].length === 0) return true;
    const n = input[0].length;
    const grown = new Float32Array(this.input.length + n);
    grown.set(this.input);
    for (let i = 0; i < n; i++) {
      let x = input[0][i];
      if (input.length > 1) x = (x + input[1][i]) / 2; // stereo device: mix down
      grown[this.input.length + i] = x;
    }
    this.input = grown;
    const need = this.kernel ? HALF : 0;
    while (Math.floor(this.pos) + 1 + need < this.input.length) {
      const i = Math.floor(this.pos);
      const frac = this.pos - i;
      const a = this.at(i);
      this.push(frac === 0 ? a : a + (this.at(i + 1) - a) * frac);
      this.pos += this.step;
    }
    const drop = Math.floor(this.pos) - HALF; // keep HALF samples of history before the read position
    if (drop > 0) {
      this.input = this.input.slice(drop);
      this.pos -= drop;
    }
    return true;
  }
}

registerProcessor('mic-capture', MicCapture);
