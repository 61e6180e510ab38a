// noisyseg review: the page's logic, no framework, no build step.
"use strict";
(() => {
  const TOKEN = new URLSearchParams(location.search).get("t") || "";
  const ROW_H = 24;
  const LABELS = { keep: "kept", accept: "accepted", reannotate: "re-annotate" };
  const $ = (id) => document.getElementById(id);
  const S = {
    meta: null, rows: [], decisions: {}, seq: 0, order: [], pos: 0, caseMeta: null,
    slices: [], active: 0, window: null, pending: [], sending: false, metaCache: new Map(),
    navStart: 0, noteDraft: null,
  };

  const api = (path, params = {}) => {
    const q = new URLSearchParams({ ...params, t: TOKEN });
    return `${path}?${q}`;
  };
  async function getJSON(path, params) {
    const r = await fetch(api(path, params));
    if (!r.ok) throw new Error(`${path}: ${r.status} ${(await r.json().catch(() => ({}))).error || ""}`);
    return r.json();
  }
  function setStatus(text, cls) {
    const el = $("status");
    el.textContent = text;
    el.className = "status " + (cls || "");
  }

  // ------------------------------------------------------------------ list
  const det = () => $("sortby").value || S.meta.primary;
  const detIndex = (d) => S.meta.detectors.indexOf(d);
  const score = (r, d) => r[2 + detIndex(d)];
  const flagged = (r) => r[2 + S.meta.detectors.length + detIndex(S.meta.primary)];
  const decisionOf = (i) => {
    const d = (S.decisions[S.rows[i][0]] || {}).decision;
    return d === "undecided" ? undefined : d;
  };

  function buildOrder(keepCase) {
    const text = $("search").value.trim().toLowerCase();
    const show = $("show").value;
    const d = det();
    let order = [];
    for (let i = 0; i < S.rows.length; i++) {
      const r = S.rows[i];
      if (text && !r[0].toLowerCase().includes(text)) continue;
      const dec = decisionOf(i);
      if (show === "flagged" && !flagged(r)) continue;
      if (show === "undecided" && dec) continue;
      if (["keep", "accept", "reannotate"].includes(show) && dec !== show) continue;
      order.push(i);
    }
    if (d !== S.meta.primary) {
      order.sort((a, b) => (score(S.rows[b], d) ?? -Infinity) - (score(S.rows[a], d) ?? -Infinity));
    }
    S.order = order;
    const at = keepCase == null ? -1 : order.indexOf(keepCase);
    S.pos = at >= 0 ? at : 0;
    $("count").textContent = `${order.length} of ${S.rows.length} cases`;
    $("listspacer").style.height = `${order.length * ROW_H}px`;
    renderList();
  }

  function renderList() {
    const box = $("listbox");
    const first = Math.max(0, Math.floor(box.scrollTop / ROW_H) - 10);
    const last = Math.min(S.order.length, first + Math.ceil(box.clientHeight / ROW_H) + 20);
    const d = det();
    const cur = S.order[S.pos];
    const html = [];
    for (let k = first; k < last; k++) {
      const i = S.order[k];
      const r = S.rows[i];
      const dec = decisionOf(i) || "";
      const s = score(r, d);
      html.push(`<div class="row${i === cur ? " current" : ""}" data-k="${k}">` +
        `<span class="rk">#${r[1]}</span><span class="id">${escapeHtml(r[0])}</span>` +
        `<span class="fl">${flagged(r) ? "⚑" : ""}</span>` +
        `<span class="sc">${s == null ? "–" : s.toFixed(3)}</span>` +
        `<span class="dc ${dec}">${LABELS[dec] || ""}</span></div>`);
    }
    const list = $("list");
    list.style.top = `${first * ROW_H}px`;
    list.innerHTML = html.join("");
  }

  function scrollToCurrent() {
    const box = $("listbox");
    const y = S.pos * ROW_H;
    if (y < box.scrollTop || y + ROW_H > box.scrollTop + box.clientHeight) {
      box.scrollTop = Math.max(0, y - box.clientHeight / 2);
    }
    renderList();
  }

  function updateProgress() {
    const n = Object.values(S.decisions).filter((d) => d.decision !== "undecided").length;
    $("progress").textContent = `${n} / ${S.rows.length} decided`;
  }

  // ------------------------------------------------------------------ case view
  async function caseMeta(row) {
    if (!S.metaCache.has(row)) {
      const p = getJSON(`/api/case/${row}`);
      S.metaCache.set(row, p);
      p.catch(() => S.metaCache.delete(row));
      if (S.metaCache.size > 64) S.metaCache.delete(S.metaCache.keys().next().value);
    }
    return S.metaCache.get(row);
  }

  function layerUrl(row, layer, plane, index) {
    const p = { row, layer, plane, index, style: $("style").value };
    if (layer === "image" && S.window) { p.lo = S.window[0]; p.hi = S.window[1]; }
    return api("/api/render", p);
  }

  async function showCase() {
    if (!S.order.length) {
      $("caseid").textContent = "no case matches the filter";
      $("viewer").innerHTML = "";
      return;
    }
    const row = S.order[S.pos];
    scrollToCurrent();
    let m;
    try {
      m = await caseMeta(row);
    } catch (e) {
      setStatus(`cannot load case: ${e.message}`, "bad");
      return;
    }
    if (S.order[S.pos] !== row) return; // moved on meanwhile
    S.caseMeta = m;
    S.slices = m.planes.map((p) => p.start);
    if (!S.userWindow) S.window = m.window.slice();
    setWindowInputs();
    renderHead(m);
    buildViewer(m);
    renderDecision();
    prefetch(S.pos + 1);
    prefetch(S.pos - 1);
    document.body.dataset.ready = m.sample_id;
    markShown(m);
  }

  // When every visible layer of the case has loaded: data-shown (its id), data-shown-ms (time
  // since the page's navigation started) and data-step-ms (since the move to this case), what
  // the benchmarks and the browser tests read.
  function markShown(m) {
    const imgs = [...document.querySelectorAll(".plane img")].filter((i) => i.style.display !== "none");
    Promise.all(imgs.map((i) => (i.complete && i.naturalWidth) ? null
      : new Promise((res) => { i.addEventListener("load", res, { once: true }); i.addEventListener("error", res, { once: true }); })))
      .then(() => {
        if (S.caseMeta !== m) return;
        const now = performance.now();
        Object.assign(document.body.dataset, { shown: m.sample_id, shownMs: now.toFixed(1), stepMs: (now - S.navStart).toFixed(1) });
      });
  }

  function prefetch(k) {
    if (k < 0 || k >= S.order.length) return;
    const row = S.order[k];
    caseMeta(row).then((m) => {
      const layers = ["image", "given", "pseudo"];
      m.planes.forEach((p, j) => layers.forEach((l) => {
        const img = new Image();
        const saved = S.window;
        if (!S.userWindow) S.window = m.window;
        img.src = layerUrl(row, l, j, p.start);
        S.window = saved;
      }));
    }).catch(() => {});
  }

  function renderHead(m) {
    const r = S.rows[m.row];
    $("caseid").textContent = `#${m.rank}  ${m.sample_id}`;
    const parts = S.meta.detectors.map((d) => {
      const s = score(r, d);
      return `<span title="${escapeHtml(d)} score (higher = more suspect)">${escapeHtml(d)}: ` +
        `<b>${s == null ? "–" : s.toFixed(4)}</b></span>`;
    });
    parts.push(`<span>${flagged(r) ? "<b>flagged</b>" : "not flagged"} by ${escapeHtml(S.meta.primary)}</span>`);
    const c = S.meta.corrupted[m.row];
    if (c != null) parts.push(`<span>simulated error: <b>${c ? "yes" : "no"}</b></span>`);
    parts.push(`<span>${m.labels_differ} voxels differ</span>`);
    parts.push(`<span>shape ${m.shape.join("×")}, spacing ${m.spacing.map((v) => +v.toFixed(3)).join("×")} mm</span>`);
    if (m.worst_slice != null) parts.push(`<span>worst slice ${m.worst_slice} (axis ${m.slice_axis})</span>`);
    $("scores").innerHTML = parts.join("");
  }

  function buildViewer(m) {
    const viewer = $("viewer");
    viewer.innerHTML = "";
    const room = Math.max(200, window.innerHeight - 300);
    const box = m.planes.length === 1 ? Math.min(720, window.innerWidth - 420, room)
      : Math.min(380, (window.innerWidth - 420) / 3, room);
    m.planes.forEach((p, j) => {
      const w = p.cols * p.col_mm, h = p.rows * p.row_mm;
      const scale = box / Math.max(w, h);
      const div = document.createElement("div");
      div.className = "plane";
      div.dataset.plane = j;
      div.innerHTML = `<div class="title"><span>${p.name}</span><span class="idx"></span></div>` +
        `<div class="stack" style="width:${Math.round(w * scale)}px;height:${Math.round(h * scale)}px">` +
        ["image", "diff", "given", "pseudo"].map((l) => `<img alt="${l}" data-layer="${l}">`).join("") +
        `</div>` + (p.n > 1 ? `<input type="range" min="0" max="${p.n - 1}" value="${S.slices[j]}" aria-label="${p.name} slice">` : "");
      const slider = div.querySelector("input");
      if (slider) {
        slider.addEventListener("input", () => { S.slices[j] = +slider.value; S.active = j; drawPlane(j); });
      }
      div.addEventListener("wheel", (e) => {
        if (p.n <= 1) return;
        e.preventDefault();
        S.active = j;
        moveSlice(e.deltaY > 0 ? 1 : -1);
      }, { passive: false });
      div.addEventListener("mouseenter", () => { S.active = j; });
      viewer.appendChild(div);
      drawPlane(j);
    });
    renderLegend();
  }

  function drawPlane(j) {
    const m = S.caseMeta;
    if (!m) return;
    const div = $("viewer").querySelector(`.plane[data-plane="${j}"]`);
    if (!div) return;
    const p = m.planes[j];
    const idx = S.slices[j];
    div.querySelector(".idx").textContent = p.n > 1 ? `${idx + 1} / ${p.n}` : "";
    const slider = div.querySelector("input");
    if (slider) slider.value = idx;
    const opacity = $("opacity").value / 100;
    for (const img of div.querySelectorAll("img")) {
      const l = img.dataset.layer;
      const on = l === "image" || $(`show-${l}`).checked;
      img.style.display = on ? "" : "none";
      if (l !== "image") img.style.opacity = opacity;
      if (on) {
        const url = layerUrl(m.row, l, j, idx);
        if (img.getAttribute("src") !== url) img.src = url;
      }
    }
  }
  const drawAll = () => S.caseMeta && S.caseMeta.planes.forEach((_, j) => drawPlane(j));

  function moveSlice(step) {
    const m = S.caseMeta;
    if (!m) return;
    const j = Math.min(S.active, m.planes.length - 1);
    const n = m.planes[j].n;
    S.slices[j] = Math.max(0, Math.min(n - 1, S.slices[j] + step));
    drawPlane(j);
  }

  function renderLegend() {
    const names = S.meta.class_names.slice(1).map((n, k) =>
      `<span><i style="background:${S.meta.colours[k % S.meta.colours.length]}"></i>${escapeHtml(n)}</span>`);
    names.push(`<span><i style="background:#ff00ff"></i>difference</span>`);
    names.push(`<span>solid: given mask, dashed: pseudo-label</span>`);
    $("legend").innerHTML = names.join("");
  }

  function setWindowInputs() {
    if (!S.window) return;
    const [lo, hi] = S.window;
    $("level").value = +((lo + hi) / 2).toPrecision(5);
    $("width").value = +(hi - lo).toPrecision(5);
  }

  function windowFromInputs() {
    const level = parseFloat($("level").value), width = parseFloat($("width").value);
    if (!isFinite(level) || !isFinite(width) || width <= 0) return;
    S.window = [level - width / 2, level + width / 2];
    S.userWindow = true;
    drawAll();
  }

  // ------------------------------------------------------------------ decisions
  function renderDecision() {
    const m = S.caseMeta;
    if (!m) return;
    const d = S.decisions[m.sample_id];
    const el = $("current");
    const dec = d && d.decision !== "undecided" ? d.decision : "";
    el.className = "decision " + dec;
    el.textContent = dec ? `${LABELS[dec]} — ${d.reviewer}, ${d.time.replace("T", " ").slice(0, 19)}${d.pending ? " (saving…)" : ""}` : "undecided";
    // a note typed but not yet decided stays, whatever refresh arrives (a save of the
    // previous case finishing after the reviewer pressed Esc used to wipe it)
    const draft = S.noteDraft && S.noteDraft.sid === m.sample_id;
    if (document.activeElement !== $("note") && !draft) $("note").value = d ? d.note || "" : "";
  }

  function decide(decision, { advance = true } = {}) {
    const m = S.caseMeta;
    if (!m) return;
    const note = $("note").value;
    const sid = m.sample_id;
    S.noteDraft = null;
    S.decisions[sid] = { sample_id: sid, decision, note, reviewer: S.meta.reviewer, time: new Date().toISOString(), pending: true };
    S.pending.push({ sample_id: sid, decision, note });
    flush();
    updateProgress();
    renderDecision();
    if (advance && $("advance").checked && decision !== "undecided") go(1);
    else renderList();
  }

  async function flush() {
    if (S.sending) return;
    S.sending = true;
    while (S.pending.length) {
      const item = S.pending[0];
      try {
        const r = await fetch("/api/decision", {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-Noisyseg-Token": TOKEN },
          body: JSON.stringify(item),
        });
        const body = await r.json().catch(() => ({}));
        if (!r.ok) {
          S.pending.shift();
          setStatus(`not saved: ${body.error || r.status}`, "bad");
          continue;
        }
        S.pending.shift();
        const d = body.decision;
        const cur = S.decisions[d.sample_id];
        if (!cur || cur.pending) S.decisions[d.sample_id] = d;
        S.seq = Math.max(S.seq, d.seq);
        setStatus(`saved #${d.seq}`, "ok");
      } catch (e) {
        setStatus(`server unreachable: ${S.pending.length} decision(s) waiting, retrying…`, "bad");
        await new Promise((res) => setTimeout(res, 2000));
      }
    }
    S.sending = false;
    renderDecision();
    renderList();
  }

  async function poll() {
    try {
      const body = await getJSON("/api/decisions", { since: S.seq });
      for (const d of body.rows) {
        const cur = S.decisions[d.sample_id];
        if (!cur || !cur.pending) S.decisions[d.sample_id] = d;
      }
      S.seq = Math.max(S.seq, body.seq);
      if (body.rows.length) { updateProgress(); renderList(); renderDecision(); }
      if (!S.pending.length && $("status").classList.contains("bad")) setStatus("connected", "ok");
    } catch (e) {
      setStatus("server unreachable", "bad");
    }
  }

  // ------------------------------------------------------------------ navigation
  function go(step) {
    if (!S.order.length) return;
    const k = Math.max(0, Math.min(S.order.length - 1, S.pos + step));
    if (k === S.pos) return;
    S.navStart = performance.now();
    S.pos = k;
    showCase();
  }

  function onKey(e) {
    const t = e.target;
    if (t && (t.id === "note")) {
      if (e.key === "Enter") {
        e.preventDefault();
        const d = S.decisions[S.caseMeta && S.caseMeta.sample_id];
        decide(d && d.decision ? d.decision : "undecided", { advance: false });
        t.blur();
      } else if (e.key === "Escape") {
        t.blur();
      }
      return;
    }
    if (t && (t.tagName === "INPUT" && t.type !== "checkbox" && t.type !== "range" || t.tagName === "SELECT")) {
      if (e.key === "Escape") t.blur();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const actions = {
      j: () => go(1), ArrowDown: () => go(1), p: () => go(-1), ArrowUp: () => go(-1),
      ArrowRight: () => moveSlice(1), ArrowLeft: () => moveSlice(-1),
      k: () => decide("keep"), a: () => decide("accept"), r: () => decide("reannotate"),
      u: () => decide("undecided", { advance: false }),
      c: () => $("note").focus(), "/": () => $("search").focus(),
      1: () => toggle("given"), 2: () => toggle("pseudo"), 3: () => toggle("diff"),
      o: () => { $("style").value = $("style").value === "outline" ? "fill" : "outline"; drawAll(); },
      w: () => { S.userWindow = false; if (S.caseMeta) { S.window = S.caseMeta.window.slice(); setWindowInputs(); drawAll(); } },
    };
    const f = actions[e.key];
    if (f) { e.preventDefault(); f(); }
  }

  function toggle(layer) {
    const box = $(`show-${layer}`);
    box.checked = !box.checked;
    drawAll();
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  // the audit's check of its final network: failed, its pseudo-labels are not worth accepting
  function renderTrust(check) {
    const el = $("trust");
    el.hidden = !check || check.passed !== false;
    if (el.hidden) return;
    const fmt = (v) => (typeof v === "number" ? v.toFixed(3) : "unknown");
    el.replaceChildren();
    const head = document.createElement("strong");
    head.textContent = "Model check failed:";
    const why = check.message || `the audit's network reached a validation Dice of ${fmt(check.val_dice)} `
      + `(floor ${fmt(check.floor)})`;
    const advice = document.createElement("div");
    advice.textContent = "Its pseudo-labels are not worth accepting: keep the given masks or send "
      + "the cases for re-annotation.";
    el.append(head, why.replace(/\.?$/, "."), advice);
  }

  // ------------------------------------------------------------------ start
  async function start() {
    try {
      S.meta = await getJSON("/api/cases");
    } catch (e) {
      setStatus(e.message, "bad");
      return;
    }
    S.rows = S.meta.rows;
    for (const d of S.meta.log) S.decisions[d.sample_id] = d;
    S.seq = S.meta.seq;
    $("audit").textContent = `${S.meta.audit} (${S.meta.kind}, ${S.meta.data})`;
    renderTrust(S.meta.model_check);
    $("reviewer").textContent = `reviewer: ${S.meta.reviewer}`;
    $("sortby").innerHTML = S.meta.detectors.map((d) => `<option value="${escapeHtml(d)}">rank by ${escapeHtml(d)}</option>`).join("");
    updateProgress();
    setStatus("ready", "ok");
    buildOrder(null);
    // resume: start at the first undecided case of the ranking
    const k = S.order.findIndex((i) => !decisionOf(i));
    S.pos = k >= 0 ? k : 0;
    showCase();
    setInterval(poll, 4000);

    document.addEventListener("keydown", onKey);
    $("note").addEventListener("input", () => {
      if (S.caseMeta) S.noteDraft = { sid: S.caseMeta.sample_id, text: $("note").value };
    });
    $("listbox").addEventListener("scroll", renderList);
    $("list").addEventListener("click", (e) => {
      const row = e.target.closest(".row");
      if (!row) return;
      S.navStart = performance.now();
      S.pos = +row.dataset.k;
      showCase();
    });
    for (const id of ["search", "show", "sortby"]) {
      $(id).addEventListener("input", () => {
        const cur = S.order[S.pos];
        buildOrder(cur);
        showCase();
      });
    }
    for (const id of ["show-given", "show-pseudo", "show-diff", "style", "opacity"]) {
      $(id).addEventListener("input", drawAll);
    }
    for (const id of ["level", "width"]) $(id).addEventListener("change", windowFromInputs);
    $("autowin").addEventListener("click", () => onKey({ key: "w", target: document.body, preventDefault() {} }));
    for (const b of document.querySelectorAll("#decide button")) {
      b.addEventListener("click", () => decide(b.dataset.decision, { advance: b.dataset.decision !== "undecided" }));
    }
    window.addEventListener("resize", () => { renderList(); if (S.caseMeta) buildViewer(S.caseMeta); });
    window.addEventListener("beforeunload", (e) => { if (S.pending.length) { e.preventDefault(); e.returnValue = ""; } });
  }
  start();
})();
