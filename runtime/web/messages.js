// What the page says for each server message, close code and failed connection. Pure functions,
// shared by app.js and tests/test_runtime_web.py (run under node there).
"use strict";

const CLOSE = { NORMAL: 1000, SHUTDOWN: 1001, BAD_DATA: 1003, NO_STATUS: 1005, ABNORMAL: 1006, TOO_BIG: 1009, BUSY: 1013, IDLE: 4000 };

// A 0x05 message: "busy: ..." / "idle: ..." / "bad audio: ..." → the state and the text to show
// (the state is not repeated in the text: the badge reads "busy", the text "all 2 slots ...").
function describeServerError(message) {
  const m = /^(busy|idle): (.*)$/s.exec(message);
  if (m) return { state: m[1] === "busy" ? "busy" : "closed", detail: m[2] };
  return { state: "error", detail: message };
}

// The websocket closed. `handshake`: whether the server had accepted the session.
function describeClose(code, reason, handshake) {
  if (code === CLOSE.NORMAL || code === CLOSE.NO_STATUS) return { state: "closed", detail: "" };
  if (code === CLOSE.SHUTDOWN) return { state: "closed", detail: "the server shut down" };
  if (code === CLOSE.IDLE) return { state: "closed", detail: "no audio reached the server for too long" };
  if (code === CLOSE.TOO_BIG) return { state: "error", detail: "a message was too large for the server" };
  if (code === CLOSE.BUSY) return { state: "busy", detail: "all conversation slots are in use, try again later" };
  if (code === CLOSE.ABNORMAL && !handshake) return { state: "error", detail: "could not connect to the server" };
  if (code === CLOSE.ABNORMAL) return { state: "error", detail: "the connection was lost" };
  return { state: "error", detail: `closed with code ${code}${reason ? " (" + reason + ")" : ""}` };
}

// /api/status answered with `status` before connecting: why a websocket would be refused.
function describeStatus(status) {
  if (status === 401) return "wrong or missing access token: open this page as /?token=YOUR_TOKEN";
  if (status === 403) return "this page's origin may not use the server (see --allow-origin)";
  if (status >= 500) return `the server failed (HTTP ${status})`;
  return null;
}

// A 0x04 JSON notice, e.g. {"event": "input_dropped", "frames": 12, "message": "..."}.
function describeNotice(payload) {
  if (payload && payload.event === "input_dropped") return payload.message || `${payload.frames} input frames dropped`;
  return null;
}

if (typeof module !== "undefined") module.exports = { describeServerError, describeClose, describeStatus, describeNotice, CLOSE };
