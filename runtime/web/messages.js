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

// A 0x04 JSON notice, e.g. {"event": "input_dropped", "frames": 12, "message": "..."}, or
// {"event": "queued", "place": 2, ...} while waiting for a slot, or {"event": "sampling", ...}.
function describeNotice(payload) {
  if (!payload) return null;
  if (payload.event === "input_dropped") return payload.message || `${payload.frames} input frames dropped`;
  if (payload.event === "queued") return payload.message || `waiting for a free slot: number ${payload.place} in the queue`;
  if (payload.event === "sampling") return payload.message || null;
  return null;
}

// getUserMedia failed: say what to do, not the browser's bare "Permission denied".
function describeMicError(name, message) {
  if (name === "NotAllowedError" || name === "PermissionDeniedError") {
    return "the microphone is blocked for this page: allow it (the microphone or lock icon in the address bar), then press Connect again";
  }
  if (name === "NotFoundError" || name === "DevicesNotFoundError") return "no microphone was found: plug one in (or enable it in the system settings), then press Connect again";
  if (name === "NotReadableError" || name === "TrackStartError") return "the microphone could not be opened: another program may be using it";
  if (name === "OverconstrainedError") return "the microphone cannot record mono audio as this page asks";
  if (name === "SecurityError") return "the browser refused the microphone to this page (it needs https or localhost)";
  return `the microphone could not be opened (${name}${message ? ": " + message : ""})`;
}

// Browsers give the microphone and WebCodecs only to secure pages: https, or http on localhost.
function insecureContextHelp(loc) {
  const port = loc.port || (loc.protocol === "https:" ? "443" : "80");
  return `browsers give the microphone only to https pages or to localhost, and this page is ${loc.protocol}//${loc.host}. `
    + `Either start the server with --ssl self-signed and open https://${loc.host}/, `
    + `or tunnel: ssh -L ${port}:localhost:${port} ${loc.hostname} and open http://localhost:${port}/`;
}

if (typeof module !== "undefined") {
  module.exports = { describeServerError, describeClose, describeStatus, describeNotice, describeMicError, insecureContextHelp, CLOSE };
}
