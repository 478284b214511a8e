// The interactive half of report.html: lazily paged dialogue list, two-lane timeline, player
// (for an acoustic view, also its clean rendering, switched at the same moment).
// Data files are plain <script>s calling JMR_page / JMR_detail: a page opened from disk may load
// sibling scripts but not fetch() JSON.
"use strict";
(function () {
  const CFG = JSON.parse(document.getElementById("jmr-config").textContent);
  const $ = (id) => document.getElementById(id);
  const SVG_NS = "http://www.w3.org/2000/svg";
  const LANE_TOP = [22, 90], LANE_H = 60;
  const state = {
    pages: new Map(), details: new Map(), loading: new Map(), page: 0, sortKey: null, sortDir: 1,
    generation: 0, current: null, detail: null, pps: 100, mode: "stereo", graph: null, raf: 0,
  };
  window.JMR_page = (k, rows) => state.pages.set(k, rows);
  window.JMR_detail = (k, chunk) => state.details.set(k, chunk);

  const pad = (k) => String(k).padStart(5, "0");
  function loadScript(key, src) {
    if (!state.loading.has(key)) {
      state.loading.set(key, new Promise((resolve, reject) => {
        const s = document.createElement("script");
        s.src = `${src}?v=${CFG.token}`;
        s.onload = () => { s.remove(); resolve(); };
        s.onerror = () => { s.remove(); state.loading.delete(key); reject(new Error(`missing ${src}`)); };
        document.head.appendChild(s);
      }));
    }
    return state.loading.get(key);
  }
  async function getPage(k) {
    await loadScript(`p${k}`, `${CFG.data}/list-${pad(k)}.js`);
    return state.pages.get(k) || [];
  }
  async function getDetail(chunk) {
    await loadScript(`d${chunk}`, `${CFG.data}/detail-${pad(chunk)}.js`);
    return state.details.get(chunk) || {};
  }
  async function allRows(onProgress) {
    const rows = [];
    for (let k = 0; k < CFG.pages; k++) {
      rows.push(...await getPage(k));
      onProgress(k + 1);
    }
    return rows;
  }
  function status(text) { $("list-status").textContent = text; }

  // ------------------------------------------------------------------------------------ list
  function filters() {
    return {
      text: $("f-text").value.trim().toLowerCase(), corpus: $("f-corpus").value,
      overlaps: Number($("f-overlaps").value) || 0, backchannels: Number($("f-backchannels").value) || 0,
      warnings: $("f-warnings").checked,
    };
  }
  function active(f) { return f.text || f.corpus || f.overlaps > 0 || f.backchannels > 0 || f.warnings || state.sortKey; }
  function matches(f, r) {
    return (!f.text || r.id.toLowerCase().includes(f.text) || r.dialogue_id.toLowerCase().includes(f.text))
      && (!f.corpus || r.corpus === f.corpus) && (r.overlaps || 0) >= f.overlaps
      && (r.backchannels || 0) >= f.backchannels && (!f.warnings || r.warnings.length > 0);
  }
  function sortValue(r, key) { return key === "warnings" ? r.warnings.length : r[key] ?? -Infinity; }

  async function refresh() {
    const gen = ++state.generation;
    const f = filters();
    let rows, nPages, matched;
    try {
      if (!active(f)) {
        nPages = CFG.pages;
        state.page = Math.min(state.page, nPages - 1);
        rows = await getPage(state.page);
        matched = CFG.total;
        status("");
      } else {
        const all = await allRows((n) => { if (gen === state.generation && n < CFG.pages) status(`loading list ${n} / ${CFG.pages} pages…`); });
        let view = all.filter((r) => matches(f, r));
        if (state.sortKey) {
          const key = state.sortKey, dir = state.sortDir;
          view = view.slice().sort((a, b) => {
            const x = sortValue(a, key), y = sortValue(b, key);
            return (x < y ? -1 : x > y ? 1 : 0) * dir;
          });
        }
        matched = view.length;
        nPages = Math.max(1, Math.ceil(view.length / CFG.page_size));
        state.page = Math.min(state.page, nPages - 1);
        rows = view.slice(state.page * CFG.page_size, (state.page + 1) * CFG.page_size);
        status(`${matched} of ${CFG.total} match`);
      }
    } catch (e) {
      status(`${e.message}: the report_data folder is incomplete; rerun jmoshi-augment report`);
      return;
    }
    if (gen !== state.generation) return;  // a newer refresh owns the table
    drawRows(rows);
    $("page-info").textContent = `page ${state.page + 1} of ${nPages} (${matched} dialogues)`;
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= nPages - 1;
  }

  function cell(tr, text, cls) {
    const td = tr.insertCell();
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }
  const count = (n, planned) => (n ?? "–") + (planned != null ? ` (${planned})` : "");
  function drawRows(rows) {
    const body = $("list").tBodies[0];
    body.replaceChildren();
    for (const r of rows) {
      const tr = body.insertRow();
      tr.dataset.id = r.id;
      if (state.current && state.current.id === r.id) tr.classList.add("selected");
      const idCell = cell(tr, r.id);
      if (r.view_of) idCell.append(Object.assign(document.createElement("span"), { className: "tag", textContent: `view of ${r.view_of}` }));
      cell(tr, r.corpus); cell(tr, `${r.duration.toFixed(1)} s`); cell(tr, r.turns ?? "–");
      cell(tr, count(r.overlaps, r.planned_overlaps)); cell(tr, count(r.backchannels, r.planned_backchannels));
      cell(tr, `${r.main ?? "?"} (${r.voices.main ?? "?"}) / ${r.other ?? "?"} (${r.voices.other ?? "?"})`);
      const w = cell(tr, r.warnings.length ? r.warnings.join("; ") : "", r.warnings.length ? "warn" : "");
      w.title = r.warnings.join("\n");
      tr.addEventListener("click", () => select(r));
    }
  }

  // ---------------------------------------------------------------------------------- detail
  async function select(row) {
    state.current = row;
    for (const tr of $("list").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.id === row.id);
    history.replaceState(null, "", `#d=${encodeURIComponent(row.id)}`);
    let d;
    try {
      d = (await getDetail(row.chunk))[row.id];
    } catch (e) {
      d = null;
    }
    if (state.current !== row) return;
    state.detail = d || { words: [], source_turns: [], script: [], events: null, planned: {}, counts: {} };
    $("detail").hidden = false;
    $("d-title").textContent = `${row.id} (${row.corpus}, ${row.duration.toFixed(2)} s)`;
    const planned = Object.entries(state.detail.planned || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    const counts = Object.entries(state.detail.counts || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    $("d-meta").textContent = `dialogue ${row.dialogue_id}; planned: ${planned || "–"}; detected: ${counts || "–"}`;
    const warnings = [...row.warnings, ...(d ? [] : ["detail record missing from report_data"])];
    $("d-warnings").replaceChildren(...warnings.map((w) => Object.assign(document.createElement("li"), { textContent: w })));
    $("label-0").textContent = `main (ch 0): ${row.main ?? "?"} · ${row.voices.main ?? "?"}`;
    $("label-1").textContent = `other (ch 1): ${row.other ?? "?"} · ${row.voices.other ?? "?"}`;
    setAudio(row, state.detail);
    drawView(row, state.detail);
    drawTimeline();
    drawTexts(row, state.detail);
    drawCandidates(state.detail.candidates);
    $("detail").scrollIntoView({ block: "nearest" });
  }

  // Best of N: every candidate with its seed, scores and fate (kept, lost and why, or failed).
  function drawCandidates(sel) {
    const box = $("d-candidates");
    box.hidden = !sel || !Array.isArray(sel.candidates);
    if (box.hidden) return;
    const fmt = (v) => (v === null || v === undefined ? "–" : Number(v).toPrecision(4));
    const rows = sel.candidates.map((c) => {
      const tr = document.createElement("tr");
      if (c.winner) tr.className = "selected";
      const scores = Object.entries(c.scores || {}).map(([k, v]) => `${k} ${fmt(v)}`).join(", ");
      const outcome = c.winner ? "kept" : c.failed ? `failed: ${c.failed}` : c.lost || "";
      for (const text of [c.index, c.seed ?? "–", fmt(c.total), scores || "–", outcome]) cell(tr, String(text));
      return tr;
    });
    $("d-candidates-table").tBodies[0].replaceChildren(...rows);
  }

  // An acoustic view: what it drew, and a link to the clean rendering it was made from.
  function drawView(row, d) {
    $("d-view").hidden = !row.view_of;
    if (!row.view_of) return;
    $("d-view-index").textContent = d.view != null ? `#${d.view}` : "";
    Object.assign($("d-view-of"), { textContent: row.view_of, href: `#d=${encodeURIComponent(row.view_of)}` });
    $("d-acoustics").tBodies[0].replaceChildren(...(d.acoustics || []).map(([name, text]) => {
      const tr = document.createElement("tr");
      cell(tr, name); cell(tr, text);
      return tr;
    }));
  }

  function drawTexts(row, d) {
    const role = (spk) => (spk === row.main ? "main" : spk === row.other ? "other" : "");
    const item = (spk, text, kind) => {
      const li = document.createElement("li");
      if (kind) li.className = kind;
      const b = Object.assign(document.createElement("span"), { className: `spk-${role(spk)}`, textContent: `${spk} ` });
      li.append(b, document.createTextNode(kind === "backchannel" ? `〈${text}〉` : text));
      return li;
    };
    $("d-source").replaceChildren(...d.source_turns.map(([spk, text]) => item(spk, text)));
    $("d-script").replaceChildren(...d.script.map(([spk, kind, text]) => item(spk, text, kind)));
  }

  function el(parent, name, attrs, text) {
    const e = document.createElementNS(SVG_NS, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text != null) e.textContent = text;
    parent.appendChild(e);
    return e;
  }
  function drawTimeline() {
    const row = state.current, d = state.detail, pps = state.pps;
    const duration = Math.max(row.duration, ...d.words.map((w) => w[2]), 1);
    const width = Math.ceil(duration * pps) + 20, height = LANE_TOP[1] + LANE_H + 6;
    const svg = $("timeline");
    svg.replaceChildren();
    svg.setAttribute("width", width); svg.setAttribute("height", height);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const x = (t) => (t * pps).toFixed(1);
    const step = pps >= 100 ? 1 : 5;
    for (let t = 0; t <= duration; t += step) {
      el(svg, "line", { class: "tick", x1: x(t), x2: x(t), y1: 14, y2: height });
      el(svg, "text", { class: "tick-label", x: Number(x(t)) + 2, y: 11 }, `${t} s`);
    }
    const ev = d.events;
    const under = el(svg, "g", { id: "events" });
    for (const ch of [0, 1]) el(under, "rect", { class: "lane-bg", x: 0, y: LANE_TOP[ch], width, height: LANE_H });
    if (ev) {
      for (const [s, e, kind] of ev.overlaps) {
        el(under, "rect", { class: `overlap overlap-${kind}`, x: x(s), y: LANE_TOP[0], width: x(e - s), height: LANE_TOP[1] + LANE_H - LANE_TOP[0] })
          .appendChild(Object.assign(document.createElementNS(SVG_NS, "title"), { textContent: `overlap (${kind}) ${(e - s).toFixed(2)} s` }));
      }
      for (const [s, e] of ev.gaps) el(under, "rect", { class: "gap", x: x(s), y: LANE_TOP[0] + LANE_H + 1, width: x(e - s), height: LANE_TOP[1] - LANE_TOP[0] - LANE_H - 2 });
    }
    for (const ch of [0, 1]) {
      const g = el(svg, "g", { id: `lane-${ch}`, class: `lane ch-${ch}` });
      const words = d.words.filter((w) => w[3] === ch);
      words.forEach(([word, s, e], i) => {
        const r = el(g, "rect", { class: "word", x: x(s), y: LANE_TOP[ch] + 4, width: Math.max(1, (e - s) * pps).toFixed(1), height: LANE_H - 14, "data-start": s, "data-end": e });
        r.appendChild(Object.assign(document.createElementNS(SVG_NS, "title"), { textContent: `${word} ${s.toFixed(2)}–${e.toFixed(2)} s` }));
        el(g, "text", { class: "word-label", x: Number(x(s)) + 1, y: LANE_TOP[ch] + (i % 2 ? 40 : 22) }, word);
      });
      if (ev) {
        for (const [s, e] of ev.ipus[ch]) el(g, "rect", { class: "ipu", x: x(s), y: LANE_TOP[ch] + LANE_H - 8, width: x(e - s), height: 4 });
        for (const [s, e] of ev.backchannels[ch]) {
          el(g, "rect", { class: "backchannel", x: x(s), y: LANE_TOP[ch] + 1, width: x(e - s), height: LANE_H - 2 })
            .appendChild(Object.assign(document.createElementNS(SVG_NS, "title"), { textContent: `backchannel ${s.toFixed(2)}–${e.toFixed(2)} s` }));
        }
      }
    }
    el(svg, "line", { id: "cursor", class: "cursor", x1: 0, x2: 0, y1: 14, y2: height });
    moveCursor();
  }

  // ---------------------------------------------------------------------------------- player
  // players.view plays the row's own file; players.clean, for an acoustic view, its clean
  // rendering. `audio` is the one the transport, cursor and channel routes act on.
  const players = { view: $("audio"), clean: $("audio-clean") };
  let audio = players.view;
  const mediaPath = (p) => p.split("/").map(encodeURIComponent).join("/");  // ids may hold # or ?
  function setAudio(row, d) {
    for (const a of Object.values(players)) a.pause();
    audio = players.view;
    $("player-duration").textContent = "–";
    $("player-duration").removeAttribute("data-seconds");
    if (row.audio) {
      audio.src = mediaPath(row.audio);
      audio.load();
    } else {
      audio.removeAttribute("src");
      $("player-duration").textContent = "no audio file";
    }
    const clean = row.view_of && d.clean_audio;
    if (clean) {
      players.clean.src = mediaPath(clean);
      players.clean.load();
    } else {
      players.clean.removeAttribute("src");
    }
    $("sources").hidden = !clean;
    for (const r of document.querySelectorAll("input[name=source]")) r.checked = r.value === "view";
  }
  // Switch between the view and its clean rendering at the same moment, playing on if playing.
  async function setSource(name) {
    const next = players[name], t = audio.currentTime, playing = !audio.paused;
    if (next !== audio && next.getAttribute("src")) {
      audio.pause();
      audio = next;
      audio.currentTime = t;
      moveCursor();
    }
    for (const r of document.querySelectorAll("input[name=source]")) r.checked = players[r.value] === audio;
    if (playing && audio.paused) await audio.play();
  }
  function moveCursor() {
    const c = $("cursor");
    if (!c) return;
    const px = (audio.currentTime || 0) * state.pps;
    c.setAttribute("x1", px.toFixed(1)); c.setAttribute("x2", px.toFixed(1));
    $("time").textContent = (audio.currentTime || 0).toFixed(2);
    const wrap = $("timeline-wrap");
    if (!audio.paused && (px < wrap.scrollLeft || px > wrap.scrollLeft + wrap.clientWidth - 40)) wrap.scrollLeft = Math.max(0, px - 60);
  }
  function tick() {
    moveCursor();
    state.raf = audio.paused ? 0 : requestAnimationFrame(tick);
  }
  const on = (type, fn) => { for (const a of Object.values(players)) a.addEventListener(type, (e) => { if (e.target === audio) fn(); }); };
  on("loadedmetadata", () => {
    $("player-duration").textContent = `${audio.duration.toFixed(2)} s`;
    $("player-duration").dataset.seconds = audio.duration;
  });
  on("error", () => { if (audio.getAttribute("src")) $("player-duration").textContent = "audio could not be loaded"; });
  on("play", () => { $("play").textContent = "❚❚ pause"; if (!state.raf) state.raf = requestAnimationFrame(tick); });
  on("pause", () => { $("play").textContent = "▶ play"; moveCursor(); });
  on("seeked", moveCursor);
  on("timeupdate", moveCursor);

  // One channel needs Web Audio, which browsers feed silence from a page opened from disk
  // (file:// media counts as cross-origin); served over http it works.
  const soloPossible = location.protocol !== "file:";
  function graph() {
    if (state.graph || !soloPossible) return state.graph;
    const ctx = new AudioContext();
    const split = ctx.createChannelSplitter(2), merge = ctx.createChannelMerger(2);
    for (const a of Object.values(players)) ctx.createMediaElementSource(a).connect(split);  // one is playing at a time
    const gains = {};
    for (const [from, to] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
      const g = ctx.createGain();
      split.connect(g, from); g.connect(merge, 0, to);
      gains[`${from}${to}`] = g;
    }
    const meter = ctx.createAnalyser();
    merge.connect(ctx.destination); merge.connect(meter);
    state.graph = { ctx, gains, meter };
    return state.graph;
  }
  const ROUTES = { stereo: ["00", "11"], main: ["00", "01"], other: ["10", "11"] };
  function setMode(mode) {
    state.mode = mode;
    const g = graph();
    if (g) for (const [k, node] of Object.entries(g.gains)) node.gain.value = ROUTES[mode].includes(k) ? 1 : 0;
    for (const r of document.querySelectorAll("input[name=mode]")) r.checked = r.value === mode;
  }
  if (!soloPossible) {
    for (const r of document.querySelectorAll("input[name=mode]")) if (r.value !== "stereo") r.disabled = true;
    $("mode-note").textContent = "one-channel playback needs the page served over http: jmoshi-augment report OUT --serve";
  }
  async function toggle() {
    if (!audio.getAttribute("src")) return;
    const g = graph();
    if (g && g.ctx.state !== "running") await g.ctx.resume();
    if (audio.paused) await audio.play(); else audio.pause();
  }

  // ----------------------------------------------------------------------------------- wiring
  $("play").addEventListener("click", toggle);
  document.addEventListener("keydown", (e) => {
    if (!state.current || ["INPUT", "SELECT", "TEXTAREA", "BUTTON"].includes(e.target.tagName)) return;
    if (e.code === "Space") { e.preventDefault(); toggle(); }
    if (e.code === "KeyC" && !$("sources").hidden) setSource(audio === players.view ? "clean" : "view");
  });
  for (const r of document.querySelectorAll("input[name=mode]")) r.addEventListener("change", () => setMode(r.value));
  for (const r of document.querySelectorAll("input[name=source]")) r.addEventListener("change", () => setSource(r.value));
  window.addEventListener("hashchange", selectFromHash);  // the link from a view to its clean rendering
  $("zoom").addEventListener("change", () => { state.pps = Number($("zoom").value); if (state.current) drawTimeline(); });
  $("timeline").addEventListener("click", (e) => {
    const rect = $("timeline").getBoundingClientRect();
    const t = (e.clientX - rect.left) / state.pps;
    if (audio.getAttribute("src") && Number.isFinite(t)) audio.currentTime = Math.max(0, t);
  });
  for (const id of ["f-text", "f-corpus", "f-overlaps", "f-backchannels", "f-warnings"]) {
    $(id).addEventListener("input", () => { state.page = 0; refresh(); });
  }
  for (const th of $("list").tHead.querySelectorAll("th[data-key]")) {
    th.addEventListener("click", () => {
      const key = th.dataset.key;
      state.sortDir = state.sortKey === key ? -state.sortDir : 1;
      state.sortKey = key;
      for (const o of $("list").tHead.querySelectorAll("th")) o.classList.remove("sorted-asc", "sorted-desc");
      th.classList.add(state.sortDir > 0 ? "sorted-asc" : "sorted-desc");
      state.page = 0;
      refresh();
    });
  }
  $("prev").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); refresh(); });
  $("next").addEventListener("click", () => { state.page += 1; refresh(); });
  for (const c of CFG.corpora) $("f-corpus").appendChild(Object.assign(document.createElement("option"), { value: c, textContent: c }));
  $("list-count").textContent = `(${CFG.total})`;

  async function selectFromHash() {
    const m = /^#d=(.+)$/.exec(location.hash);
    if (!m) return;
    const id = decodeURIComponent(m[1]);
    for (let k = 0; k < CFG.pages; k++) {
      const row = (await getPage(k)).find((r) => r.id === id);
      if (row) return select(row);
    }
  }
  // readyAt: ms from navigation to the first list (and the #d= dialogue) drawn, for benchmarks.
  const ready = refresh().then(selectFromHash).then(() => { state.readyAt = performance.now(); });
  window.JMR = { state, refresh, select, setMode, setSource, toggle, ready, players, playing: () => audio };
})();
