// Keeping a conversation in the browser: both voices on one timeline (the page's audio clock, from
// the first microphone block), written as a stereo wav (channel 0 the model, as the user heard it;
// channel 1 the user), and the model's text with the time it was heard. Nothing leaves the
// browser. Pure code, also run under node by tests/test_runtime_page_messages.py.
"use strict";

class SessionRecording {
  constructor(sampleRate) {
    this.sampleRate = sampleRate;
    this.start = null; // audio-clock time of sample 0 (the first microphone block)
    this.end = null; // audio-clock time the session ended; the wav is cut there
    this.chunks = [[], []]; // per channel: {at: sample index, data: Int16Array}
    this.pieces = []; // {t: seconds from the start, text}
  }

  // Samples (Float32Array) of `channel` that begin at audio-clock time `time`.
  add(channel, time, samples) {
    if (this.start === null) {
      if (channel !== 1) return; // the model's audio before the user's first block is silence
      this.start = time;
    }
    const at = Math.round((time - this.start) * this.sampleRate);
    const data = new Int16Array(samples.length);
    for (let i = 0; i < samples.length; i++) data[i] = Math.max(-32768, Math.min(32767, Math.round(samples[i] * 32767)));
    this.chunks[channel].push({ at, data });
  }

  addText(time, text) {
    if (this.start === null || !text) return;
    this.pieces.push({ t: Math.max(0, time - this.start), text });
  }

  finish(time) { if (this.start !== null && this.end === null) this.end = time; }

  get seconds() {
    if (this.start === null) return 0;
    if (this.end !== null) return this.end - this.start;
    let last = 0;
    for (const channel of this.chunks) for (const c of channel) last = Math.max(last, c.at + c.data.length);
    return last / this.sampleRate;
  }

  // RIFF/WAVE, 16-bit PCM, 2 channels interleaved; the length is the session's (from the first
  // microphone block to the end), silence wherever a voice had nothing.
  wav() {
    const frames = Math.max(0, Math.round(this.seconds * this.sampleRate));
    const bytes = new Uint8Array(44 + frames * 4);
    const view = new DataView(bytes.buffer);
    const ascii = (offset, s) => { for (let i = 0; i < s.length; i++) bytes[offset + i] = s.charCodeAt(i); };
    ascii(0, "RIFF"); view.setUint32(4, 36 + frames * 4, true); ascii(8, "WAVE");
    ascii(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 2, true);
    view.setUint32(24, this.sampleRate, true); view.setUint32(28, this.sampleRate * 4, true);
    view.setUint16(32, 4, true); view.setUint16(34, 16, true);
    ascii(36, "data"); view.setUint32(40, frames * 4, true);
    const pcm = new Int16Array(bytes.buffer, 44, frames * 2);
    this.chunks.forEach((channel, ch) => {
      for (const { at, data } of channel) {
        const n = Math.min(data.length, frames - at);
        for (let i = Math.max(0, -at); i < n; i++) pcm[(at + i) * 2 + ch] = data[i];
      }
    });
    return bytes;
  }

  // One line per utterance: a new line after a pause of `pause` seconds or a sentence end.
  transcript(header, pause = 1.0) {
    const lines = [];
    let line = null;
    let last = -Infinity;
    for (const { t, text } of this.pieces) {
      if (line === null || t - last > pause) {
        line = { t, text: "" };
        lines.push(line);
      }
      line.text += text;
      last = t;
      if (/[。？！?!]$/.test(text)) line = null;
    }
    const stamp = (t) => {
      const m = Math.floor(t / 60);
      return `${String(m).padStart(2, "0")}:${(t - 60 * m).toFixed(2).padStart(5, "0")}`;
    };
    const body = lines.map((l) => `[${stamp(l.t)}] ${l.text.trim()}`).filter((l) => !l.endsWith("] "));
    return [header, ...body].join("\n") + "\n";
  }
}

if (typeof module !== "undefined") module.exports = { SessionRecording };
