// What the page shows about the flow of sound, in seconds: how far the model's audio runs behind
// the user's (from the protocol alone: audio sent vs audio received over time) and signal levels.
// Pure code, also run under node by tests/test_runtime_page_messages.py.
"use strict";

// The model answers every 80 ms of the user's audio with 80 ms of its own, so when R seconds of
// the model's audio have arrived, they answer the user's first R seconds: the delay is the time
// since that much of the user's audio was sent (network both ways, the server's queue, the model
// step, Opus). The first frames the model sends are silence, but they still count as answers.
class DelayMeter {
  constructor() {
    this.sent = 0; // seconds of audio sent
    this.received = 0; // seconds of audio received
    this.marks = []; // [sent seconds after this send, time of the send] (oldest first)
    this.delay = null; // seconds, the latest estimate
  }

  onSent(seconds, now) {
    this.sent += seconds;
    this.marks.push([this.sent, now]);
  }

  // The server dropped the oldest `seconds` of the user's queued audio (a 0x04 input_dropped
  // notice): they will never be answered, so the model's audio from now on answers later audio.
  onDropped(seconds) { this.received += seconds; }

  onReceived(seconds, now) {
    this.received += seconds;
    // the first send that completed the user's first `received` seconds
    while (this.marks.length > 1 && this.marks[0][0] < this.received - 1e-9) this.marks.shift();
    const mark = this.marks[0];
    if (mark) this.delay = Math.max(0, now - mark[1]);
  }
}

// Root-mean-square level of `samples` in dB full scale (-100 for silence).
function levelDb(samples) {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  const rms = Math.sqrt(sum / Math.max(1, samples.length));
  return rms > 1e-5 ? 20 * Math.log10(rms) : -100;
}

// A meter bar's fill (0..1) for a level, over the range speech uses (-60 dBFS .. 0).
function meterFill(db) { return Math.max(0, Math.min(1, (db + 60) / 60)); }

if (typeof module !== "undefined") module.exports = { DelayMeter, levelDb, meterFill };
