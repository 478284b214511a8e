// The chat page: microphone → Opus (WebCodecs) → Ogg → websocket 0x01; 0x01 → Ogg → Opus decode →
// speakers; 0x02 → transcript; 0x04 notices; 0x05 errors. No CDN, no bundler: plain scripts served by
// the runtime. What the page says for each outcome is in messages.js.
"use strict";

const KIND = { HANDSHAKE: 0, AUDIO: 1, TEXT: 2, CONTROL: 3, METADATA: 4, ERROR: 5, PING: 6 };
const SAMPLE_RATE = 24000;
const FRAME = 480; // 20 ms Opus frames

const $ = (id) => document.getElementById(id);
const stats = { sentPages: 0, receivedPages: 0, decodedFrames: 0, playedSeconds: 0, textPieces: 0 };
window.jmoshi = { stats, state: "idle", transcript: "" };

function setState(state, detail) {
  window.jmoshi.state = state;
  document.body.dataset.state = state;
  $("state").textContent = detail ? `${state}: ${detail}` : state;
  $("start").disabled = state === "connecting" || state === "connected";
  $("stop").disabled = !(state === "connecting" || state === "connected");
}

function showError(message) {
  $("error").hidden = false;
  $("error").textContent = message;
}

function showNotice(message) {
  $("notice").hidden = false;
  $("notice").textContent = `${new Date().toLocaleTimeString()}: ${message}`;
}

function refreshMeters() {
  $("sent").textContent = stats.sentPages;
  $("received").textContent = stats.receivedPages;
  $("played").textContent = stats.playedSeconds.toFixed(1);
}

const CAPTURE_WORKLET = `
class Capture extends AudioWorkletProcessor {
  process(inputs) {
    const input = inputs[0];
    if (input && input[0]) this.port.postMessage(input[0].slice(0));
    return true;
  }
}
registerProcessor("jmoshi-capture", Capture);
`;

let session = null;

class ChatSession {
  constructor() {
    this.closed = false;
  }

  async start() {
    if (!("AudioEncoder" in window) || !("AudioDecoder" in window)) {
      throw new Error("this browser lacks WebCodecs (AudioEncoder/AudioDecoder); use a recent Chromium, Edge or Firefox");
    }
    const support = await AudioEncoder.isConfigSupported({ codec: "opus", sampleRate: SAMPLE_RATE, numberOfChannels: 1 });
    if (!support.supported) throw new Error("this browser cannot encode Opus at 24 kHz");
    const params = new URLSearchParams(window.location.search);
    const statusUrl = new URL("/api/status", window.location.href);
    if (params.get("token")) statusUrl.searchParams.set("token", params.get("token"));
    // A refused websocket upgrade only shows as code 1006 in the browser: ask first, in plain HTTP.
    const status = await fetch(statusUrl).catch(() => null);
    if (!status) throw new Error("could not reach the server");
    const refused = describeStatus(status.status);
    if (refused) throw new Error(refused);
    this.ctx = new AudioContext({ sampleRate: SAMPLE_RATE });
    await this.ctx.resume();
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    this.playHead = 0;
    this.muxer = new OggOpusMuxer(SAMPLE_RATE, Math.floor(Math.random() * 0xffffffff));
    this.demuxer = new OggDemuxer();
    this.pending = new Float32Array(0);
    this.timestamp = 0;
    this.decodeTimestamp = 0;
    this.textDecoder = new TextDecoder();

    this.decoder = new AudioDecoder({
      output: (data) => this.play(data),
      error: (e) => this.fail(`audio decoder: ${e.message}`),
    });
    this.decoder.configure({ codec: "opus", sampleRate: 48000, numberOfChannels: 1 });
    this.encoder = new AudioEncoder({
      output: (chunk) => this.sendChunk(chunk),
      error: (e) => this.fail(`audio encoder: ${e.message}`),
    });
    this.encoder.configure({ codec: "opus", sampleRate: SAMPLE_RATE, numberOfChannels: 1, bitrate: 32000 });

    const url = new URL("/api/chat", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (params.get("token")) url.searchParams.set("token", params.get("token"));
    this.ws = new WebSocket(url);
    this.ws.binaryType = "arraybuffer";
    this.ws.onmessage = (event) => this.onMessage(event);
    this.ws.onclose = (event) => this.onClose(event);
    this.ws.onerror = () => {};
    setState("connecting");
  }

  async startCapture() {
    for (const page of this.muxer.headers()) this.sendPage(page);
    const blob = new Blob([CAPTURE_WORKLET], { type: "application/javascript" });
    await this.ctx.audioWorklet.addModule(URL.createObjectURL(blob));
    this.source = this.ctx.createMediaStreamSource(this.stream);
    this.worklet = new AudioWorkletNode(this.ctx, "jmoshi-capture");
    this.worklet.port.onmessage = (event) => this.onSamples(event.data);
    this.source.connect(this.worklet);
  }

  onSamples(samples) {
    if (this.closed) return;
    const merged = new Float32Array(this.pending.length + samples.length);
    merged.set(this.pending, 0); merged.set(samples, this.pending.length);
    let offset = 0;
    while (merged.length - offset >= FRAME) {
      const frame = merged.slice(offset, offset + FRAME);
      offset += FRAME;
      const data = new AudioData({
        format: "f32", sampleRate: SAMPLE_RATE, numberOfFrames: FRAME, numberOfChannels: 1,
        timestamp: this.timestamp, data: frame,
      });
      this.timestamp += (FRAME * 1e6) / SAMPLE_RATE;
      this.encoder.encode(data);
      data.close();
    }
    this.pending = merged.slice(offset);
  }

  sendChunk(chunk) {
    const packet = new Uint8Array(chunk.byteLength);
    chunk.copyTo(packet);
    const samples48k = Math.round(((chunk.duration || (FRAME * 1e6) / SAMPLE_RATE) * 48000) / 1e6);
    this.sendPage(this.muxer.packet(packet, samples48k));
  }

  sendPage(page) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    const message = new Uint8Array(page.length + 1);
    message[0] = KIND.AUDIO;
    message.set(page, 1);
    this.ws.send(message);
    stats.sentPages += 1;
  }

  onMessage(event) {
    const bytes = new Uint8Array(event.data);
    if (bytes.length === 0) return;
    const kind = bytes[0];
    const payload = bytes.subarray(1);
    if (kind === KIND.HANDSHAKE) {
      this.handshake = true;
      setState("connected");
      this.startCapture().catch((e) => this.fail(e.message));
    } else if (kind === KIND.AUDIO) {
      stats.receivedPages += 1;
      let packets;
      try { packets = this.demuxer.push(payload); } catch (e) { this.fail(e.message); return; }
      for (const packet of packets) {
        if (isOpusHeader(packet)) continue;
        this.decoder.decode(new EncodedAudioChunk({ type: "key", timestamp: this.decodeTimestamp, data: packet }));
        this.decodeTimestamp += 20000;
      }
    } else if (kind === KIND.TEXT) {
      const piece = this.textDecoder.decode(payload);
      stats.textPieces += 1;
      window.jmoshi.transcript += piece;
      $("transcript").textContent = window.jmoshi.transcript;
    } else if (kind === KIND.METADATA) {
      let notice = null;
      try { notice = describeNotice(JSON.parse(this.textDecoder.decode(payload))); } catch (e) {}
      if (notice) showNotice(notice);
    } else if (kind === KIND.ERROR) {
      const described = describeServerError(this.textDecoder.decode(payload));
      this.serverSaid = described;
      if (described.state !== "closed") showError(described.detail);
      setState(described.state, described.detail);
    }
    refreshMeters();
  }

  play(data) {
    stats.decodedFrames += 1;
    const buffer = this.ctx.createBuffer(1, data.numberOfFrames, data.sampleRate);
    const channel = new Float32Array(data.numberOfFrames);
    data.copyTo(channel, { planeIndex: 0, format: "f32-planar" });
    data.close();
    buffer.copyToChannel(channel, 0);
    const node = this.ctx.createBufferSource();
    node.buffer = buffer;
    node.connect(this.ctx.destination);
    const now = this.ctx.currentTime;
    if (this.playHead < now + 0.02) this.playHead = now + 0.06; // small jitter buffer after an underrun
    node.start(this.playHead);
    this.playHead += buffer.duration;
    stats.playedSeconds += buffer.duration;
  }

  onClose(event) {
    if (this.closed) return; // the user pressed Disconnect
    this.stop();
    if (this.serverSaid) return; // a 0x05 message already said why
    const described = describeClose(event.code, event.reason, Boolean(this.handshake));
    if (described.state === "error") showError(described.detail);
    setState(described.state, described.detail);
  }

  fail(message) {
    showError(message);
    setState("error", message);
    this.stop();
  }

  stop() {
    if (this.closed) return;
    this.closed = true;
    try { if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(); } catch (e) {}
    try { if (this.source) this.source.disconnect(); } catch (e) {}
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    try { if (this.encoder && this.encoder.state !== "closed") this.encoder.close(); } catch (e) {}
    try { if (this.decoder && this.decoder.state !== "closed") this.decoder.close(); } catch (e) {}
  }
}

$("start").addEventListener("click", async () => {
  $("error").hidden = true;
  $("notice").hidden = true;
  window.jmoshi.transcript = "";
  $("transcript").textContent = "";
  session = new ChatSession();
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
