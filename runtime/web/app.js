// The chat page: microphone → Opus (WebCodecs) → Ogg → websocket 0x01; 0x01 → Ogg → Opus decode →
// speakers; 0x02 → transcript; 0x04 notices (queue place, dropped audio, sampling); 0x05 errors.
// No CDN, no bundler: plain scripts served by the runtime. What the page says for each outcome is
// in messages.js, the delay and levels in meters.js, the kept conversation in recording.js.
"use strict";

const KIND = { HANDSHAKE: 0, AUDIO: 1, TEXT: 2, CONTROL: 3, METADATA: 4, ERROR: 5, PING: 6 };
const SAMPLE_RATE = 24000;
const FRAME = 480; // 20 ms Opus frames
const METER_INTERVAL_MS = 100;
const SAMPLING_FIELDS = ["text_temperature", "text_topk", "audio_temperature", "audio_topk"];

const $ = (id) => document.getElementById(id);
const newStats = () => ({ sentSeconds: 0, receivedSeconds: 0, playedSeconds: 0, droppedSeconds: 0, gapSeconds: 0,
                          sentPages: 0, receivedPages: 0, decodedFrames: 0, textPieces: 0, delay: null });
window.jmoshi = { stats: newStats(), state: "idle", transcript: "", levels: { input: [], output: [] }, recording: null, notices: [] };

function setState(state, detail) {
  window.jmoshi.state = state;
  document.body.dataset.state = state;
  $("state").textContent = state;
  const bad = state === "error" || state === "busy" || state === "insecure";
  $("error").hidden = !(bad && detail);
  if (bad && detail) $("error").textContent = detail;
  if (!bad && detail) showNotice(detail);
  const live = state === "connecting" || state === "queued" || state === "connected";
  $("start").disabled = live || !window.isSecureContext;
  $("stop").disabled = !live;
  SAMPLING_FIELDS.forEach((f) => { $(f).disabled = live; });
}

function showNotice(message) {
  window.jmoshi.notices.push(message);
  $("notice").hidden = false;
  $("notice").textContent = message;
}

function refreshFigures() {
  const s = window.jmoshi.stats;
  $("sent").textContent = s.sentSeconds.toFixed(1);
  $("received").textContent = s.receivedSeconds.toFixed(1);
  $("delay").textContent = s.delay === null ? "–" : s.delay.toFixed(2);
  $("dropped").textContent = s.droppedSeconds.toFixed(2);
  $("gaps").textContent = s.gapSeconds.toFixed(2);
}

function showLevel(which, db) {
  const history = window.jmoshi.levels[which];
  history.push(db);
  if (history.length > 100) history.shift();
  $(`${which}-level`).style.width = `${(meterFill(db) * 100).toFixed(1)}%`;
}

const CAPTURE_WORKLET = `
class Capture extends AudioWorkletProcessor {
  process(inputs) {
    const input = inputs[0];
    if (input && input[0]) this.port.postMessage([input[0].slice(0), currentTime]);
    return true;
  }
}
registerProcessor("jmoshi-capture", Capture);
`;

let session = null;

class ChatSession {
  constructor() {
    this.closed = false;
    this.stats = newStats();
    this.delayMeter = new DelayMeter();
    this.recording = new SessionRecording(SAMPLE_RATE);
  }

  async start() {
    if (!window.isSecureContext) throw new Error(insecureContextHelp(window.location));
    if (!("AudioEncoder" in window) || !("AudioDecoder" in window)) {
      throw new Error("this browser lacks WebCodecs (AudioEncoder/AudioDecoder); use a recent Chromium, Edge, Safari or Firefox");
    }
    const support = await AudioEncoder.isConfigSupported({ codec: "opus", sampleRate: SAMPLE_RATE, numberOfChannels: 1 });
    if (!support.supported) throw new Error("this browser cannot encode Opus at 24 kHz");
    const params = new URLSearchParams(window.location.search);
    const refused = await checkStatus(params);
    if (refused) throw new Error(refused);
    this.ctx = new AudioContext({ sampleRate: SAMPLE_RATE });
    await this.ctx.resume();
    try { // before the websocket: a refused microphone must not take a slot
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (e) {
      throw new Error(describeMicError(e.name, e.message));
    }
    this.playHead = 0;
    this.muxer = new OggOpusMuxer(SAMPLE_RATE, Math.floor(Math.random() * 0xffffffff));
    this.demuxer = new OggDemuxer();
    this.pending = new Float32Array(0);
    this.pendingTime = 0;
    this.timestamp = 0;
    this.decodeTimestamp = 0;
    this.textDecoder = new TextDecoder();
    this.output = this.ctx.createAnalyser();
    this.output.connect(this.ctx.destination);

    this.decoder = new AudioDecoder({ output: (data) => this.play(data), error: (e) => this.fail(`audio decoder: ${e.message}`) });
    this.decoder.configure({ codec: "opus", sampleRate: 48000, numberOfChannels: 1 });
    this.encoder = new AudioEncoder({ output: (chunk) => this.sendChunk(chunk), error: (e) => this.fail(`audio encoder: ${e.message}`) });
    this.encoder.configure({ codec: "opus", sampleRate: SAMPLE_RATE, numberOfChannels: 1, bitrate: 32000 });

    const url = new URL("/api/chat", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (params.get("token")) url.searchParams.set("token", params.get("token"));
    for (const field of SAMPLING_FIELDS) if ($(field).value !== "") url.searchParams.set(field, $(field).value);
    this.ws = new WebSocket(url);
    this.ws.binaryType = "arraybuffer";
    this.ws.onmessage = (event) => this.onMessage(event);
    this.ws.onclose = (event) => this.onClose(event);
    this.ws.onerror = () => {};
    setState("connecting");
  }

  // The connection works: only now does the previous conversation make way for this one.
  begin() {
    window.jmoshi.transcript = "";
    $("transcript").textContent = "";
    window.jmoshi.recording = this.recording;
    window.jmoshi.connectedAt = performance.now();
    window.jmoshi.endedAt = null;
    setDownloads(false);
    setState("connected");
    this.meterTimer = setInterval(() => this.readMeters(), METER_INTERVAL_MS);
    this.startCapture().catch((e) => this.fail(e.message));
  }

  async startCapture() {
    for (const page of this.muxer.headers()) this.sendPage(page, 0);
    const blob = new Blob([CAPTURE_WORKLET], { type: "application/javascript" });
    await this.ctx.audioWorklet.addModule(URL.createObjectURL(blob));
    this.source = this.ctx.createMediaStreamSource(this.stream);
    this.input = this.ctx.createAnalyser();
    this.source.connect(this.input);
    this.worklet = new AudioWorkletNode(this.ctx, "jmoshi-capture");
    this.worklet.port.onmessage = (event) => this.onSamples(event.data[0], event.data[1]);
    this.source.connect(this.worklet);
  }

  readMeters() {
    for (const [which, node] of [["input", this.input], ["output", this.output]]) {
      if (!node) continue;
      const buffer = new Float32Array(node.fftSize);
      node.getFloatTimeDomainData(buffer);
      showLevel(which, levelDb(buffer));
    }
    refreshFigures();
  }

  onSamples(samples, time) {
    if (this.closed) return;
    this.recording.add(1, time, samples);
    if (this.pending.length === 0) this.pendingTime = time;
    const merged = new Float32Array(this.pending.length + samples.length);
    merged.set(this.pending, 0); merged.set(samples, this.pending.length);
    let offset = 0;
    while (merged.length - offset >= FRAME) {
      const data = new AudioData({
        format: "f32", sampleRate: SAMPLE_RATE, numberOfFrames: FRAME, numberOfChannels: 1,
        timestamp: this.timestamp, data: merged.slice(offset, offset + FRAME),
      });
      offset += FRAME;
      this.timestamp += (FRAME * 1e6) / SAMPLE_RATE;
      this.encoder.encode(data);
      data.close();
    }
    this.pending = merged.slice(offset);
  }

  sendChunk(chunk) {
    const packet = new Uint8Array(chunk.byteLength);
    chunk.copyTo(packet);
    const seconds = chunk.duration ? chunk.duration / 1e6 : FRAME / SAMPLE_RATE;
    this.sendPage(this.muxer.packet(packet, Math.round(seconds * 48000)), seconds);
  }

  sendPage(page, seconds) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    const message = new Uint8Array(page.length + 1);
    message[0] = KIND.AUDIO;
    message.set(page, 1);
    this.ws.send(message);
    this.stats.sentPages += 1;
    this.stats.sentSeconds += seconds;
    if (seconds) this.delayMeter.onSent(seconds, performance.now() / 1000);
  }

  onMessage(event) {
    const bytes = new Uint8Array(event.data);
    if (bytes.length === 0 || this.closed) return;
    const kind = bytes[0];
    const payload = bytes.subarray(1);
    if (kind === KIND.HANDSHAKE) {
      this.handshake = true;
      this.begin();
    } else if (kind === KIND.AUDIO) {
      this.stats.receivedPages += 1;
      let packets;
      try { packets = this.demuxer.push(payload); } catch (e) { this.fail(e.message); return; }
      for (const packet of packets) {
        if (isOpusHeader(packet)) continue;
        this.decoder.decode(new EncodedAudioChunk({ type: "key", timestamp: this.decodeTimestamp, data: packet }));
        this.decodeTimestamp += 20000;
      }
    } else if (kind === KIND.TEXT) {
      const piece = this.textDecoder.decode(payload);
      this.stats.textPieces += 1;
      window.jmoshi.transcript += piece;
      $("transcript").textContent = window.jmoshi.transcript;
      this.recording.addText(Math.max(this.playHead, this.ctx.currentTime), piece);
    } else if (kind === KIND.METADATA) {
      let notice = null;
      try { notice = JSON.parse(this.textDecoder.decode(payload)); } catch (e) { return; }
      if (notice.event === "input_dropped") {
        const seconds = notice.seconds ?? notice.frames * 0.08;
        this.stats.droppedSeconds += seconds;
        this.delayMeter.onDropped(seconds);
      }
      const text = describeNotice(notice);
      if (notice.event === "queued") setState("queued", text);
      else if (text) showNotice(`${new Date().toLocaleTimeString()}: ${text}`);
    } else if (kind === KIND.ERROR) {
      const described = describeServerError(this.textDecoder.decode(payload));
      this.serverSaid = described;
      setState(described.state, described.detail);
    }
  }

  play(data) {
    this.stats.decodedFrames += 1;
    const channel = new Float32Array(data.numberOfFrames);
    data.copyTo(channel, { planeIndex: 0, format: "f32-planar" });
    const buffer = this.ctx.createBuffer(1, data.numberOfFrames, data.sampleRate);
    data.close();
    buffer.copyToChannel(channel, 0);
    const node = this.ctx.createBufferSource();
    node.buffer = buffer;
    node.connect(this.output);
    const now = this.ctx.currentTime;
    if (this.playHead < now + 0.02) { // an underrun: the model's audio came late
      if (this.stats.playedSeconds > 0) this.stats.gapSeconds += now + 0.06 - this.playHead; // silence inserted
      this.playHead = now + 0.06; // small jitter buffer
    }
    node.start(this.playHead);
    this.recording.add(0, this.playHead, buffer.sampleRate === SAMPLE_RATE ? channel : resample(channel, buffer.sampleRate, SAMPLE_RATE));
    this.playHead += buffer.duration;
    this.stats.receivedSeconds += buffer.duration;
    this.stats.playedSeconds += buffer.duration;
    this.delayMeter.onReceived(buffer.duration, performance.now() / 1000);
    this.stats.delay = this.delayMeter.delay;
  }

  onClose(event) {
    if (this.closed) return; // the user pressed Disconnect
    this.stop();
    if (this.serverSaid) return; // a 0x05 message already said why
    const described = describeClose(event.code, event.reason, Boolean(this.handshake));
    setState(described.state, described.detail);
  }

  fail(message) {
    setState("error", message);
    this.stop();
  }

  stop() {
    if (this.closed) return;
    this.closed = true;
    if (this.ctx) this.recording.finish(this.ctx.currentTime);
    if (this.handshake) { window.jmoshi.endedAt = performance.now(); setDownloads(this.recording.start !== null); }
    clearInterval(this.meterTimer);
    for (const which of ["input", "output"]) $(`${which}-level`).style.width = "0%";
    try { if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(); } catch (e) {}
    try { if (this.source) this.source.disconnect(); } catch (e) {}
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    try { if (this.encoder && this.encoder.state !== "closed") this.encoder.close(); } catch (e) {}
    try { if (this.decoder && this.decoder.state !== "closed") this.decoder.close(); } catch (e) {}
    refreshFigures();
  }
}

// Linear resampling of the decoder's output (Opus decodes at 48 kHz) to the recording's 24 kHz.
function resample(samples, from, to) {
  const out = new Float32Array(Math.round((samples.length * to) / from));
  for (let i = 0; i < out.length; i++) {
    const x = (i * from) / to, j = Math.floor(x), f = x - j;
    out[i] = (samples[j] ?? 0) * (1 - f) + (samples[j + 1] ?? samples[j] ?? 0) * f;
  }
  return out;
}

// /api/status answered before connecting: a refused websocket upgrade only shows as code 1006 in
// the browser. Also fills the sampling fields' bounds and defaults once.
async function checkStatus(params) {
  const statusUrl = new URL("/api/status", window.location.href);
  if (params.get("token")) statusUrl.searchParams.set("token", params.get("token"));
  const status = await fetch(statusUrl).catch(() => null);
  if (!status) return "could not reach the server";
  const refused = describeStatus(status.status);
  if (refused || status.status !== 200) return refused;
  const info = await status.json();
  const defaults = { text_temperature: info.sampling.temp_text, audio_temperature: info.sampling.temp,
                     text_topk: info.sampling.top_k_text, audio_topk: info.sampling.top_k };
  for (const field of SAMPLING_FIELDS) {
    const [low, high] = info.sampling_bounds[field.endsWith("topk") ? "top_k" : "temp"];
    $(field).min = low; $(field).max = high;
    if ($(field).value === "") $(field).value = defaults[field];
  }
  return null;
}

function setDownloads(enabled) {
  $("download-wav").disabled = !enabled;
  $("download-text").disabled = !enabled;
}

function download(data, type, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([data], { type }));
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

const fileStamp = () => new Date().toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-");

$("download-wav").addEventListener("click", () => {
  const rec = window.jmoshi.recording;
  if (rec) download(rec.wav(), "audio/wav", `jmoshi-chat-${fileStamp()}.wav`);
});

$("download-text").addEventListener("click", () => {
  const rec = window.jmoshi.recording;
  if (!rec) return;
  const header = `# J-Moshi chat, ${new Date().toLocaleString()}, ${window.location.host}, ${rec.seconds.toFixed(1)} s (times: when the model's words were heard)`;
  download(rec.transcript(header), "text/plain;charset=utf-8", `jmoshi-chat-${fileStamp()}.txt`);
});

$("start").addEventListener("click", async () => {
  $("error").hidden = true;
  $("notice").hidden = true;
  session = new ChatSession();
  window.jmoshi.stats = session.stats; // counters are per connection; the transcript waits for the handshake
  window.jmoshi.levels = { input: [], output: [] };
  refreshFigures();
  try {
    await session.start();
  } catch (e) {
    session.fail(e.message);
  }
});

$("stop").addEventListener("click", () => {
  if (session) session.stop();
  setState("closed");
});

setState("idle");
setDownloads(false);
if (!window.isSecureContext) setState("insecure", insecureContextHelp(window.location));
