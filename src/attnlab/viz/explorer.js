// The attention explorer: draws the data written into #explorer-data (attnlab.viz.explorer).
// No libraries and no network: plain DOM, SVG and canvas, so the page works offline as one file.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("explorer-data").textContent);
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#e8590c", "#1c7ed6", "#2f9e44", "#ae3ec9", "#f08c00", "#0c8599", "#c2255c", "#5c940d",
                   "#364fc7", "#a61e4d", "#087f5b", "#862e9c", "#e67700", "#1864ab", "#2b8a3e", "#9c36b5"];
  const api = { data: DATA };  // window.explorer: the state, for the tests and the curious
  window.explorer = api;

  // ------------------------------------------------------------------ helpers
  function decode(packed) {
    // uint16 little-endian in base64 -> Float32Array of weights (round(w * 65535) on the Python side)
    const bin = atob(packed.data);
    const values = new Float32Array(bin.length >> 1);
    for (let i = 0; i < values.length; i++) {
      values[i] = (bin.charCodeAt(2 * i) | (bin.charCodeAt(2 * i + 1) << 8)) / 65535;
    }
    return { shape: packed.shape, values: values };
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children || []) node.append(c);
    return node;
  }

  function svgEl(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }

  function shown(token) {
    // Whitespace tokens (character models) get a visible stand-in.
    if (token === "\n") return "\u23ce";
    if (token === " ") return "\u2423";
    if (token === "") return "\u2205";
    return token.length > 28 ? token.slice(0, 27) + "\u2026" : token;
  }

  const TURBO = [[48, 18, 59], [70, 134, 251], [26, 228, 182], [162, 252, 60], [250, 186, 57], [228, 70, 10],
                 [122, 4, 3]];
  function turbo(t) {
    // A perceptual rainbow (an approximation of Google's Turbo): 0 dark blue -> 1 dark red.
    const x = Math.min(Math.max(t, 0), 1) * (TURBO.length - 1);
    const i = Math.min(Math.floor(x), TURBO.length - 2), f = x - i;
    return TURBO[i].map((c, k) => Math.round(c + f * (TURBO[i + 1][k] - c)));
  }

  function pct(p) { return (100 * p).toFixed(1) + "%"; }

  function select(id, options, value, onchange) {
    const s = el("select", { id: id, onchange: () => onchange(Number(s.value)) },
      options.map(([v, label]) => el("option", { value: String(v), text: label })));
    s.value = String(value);
    return s;
  }

  // ------------------------------------------------------------------ header
  if (DATA === null) {  // the local server's page before any input: only its form
    document.getElementById("app").textContent = "";
    document.body.dataset.ready = "1";
    return;
  }
  document.getElementById("model").textContent = DATA.model + (DATA.checkpoint ? " \u2014 " + DATA.checkpoint : "");
  const notes = document.getElementById("notes");
  for (const n of DATA.notes || []) notes.append(el("li", { text: n }));
  const app = document.getElementById("app");
  app.textContent = "";

  if (DATA.kind === "image") vitPage();
  else textPage();

  // ------------------------------------------------------------------ text models
  function textPage() {
    const A = decode(DATA.attention);
    const [L, H, T] = A.shape;
    const at = (l, h, i, j) => A.values[((l * H + h) * T + i) * T + j];
    const tokens = DATA.tokens;
    const state = { layer: DATA.initial.layer, heads: new Set([DATA.initial.head ?? 0]), threshold: 0.02,
                    focus: null, step: 1 };
    api.state = state;
    api.weight = at;

    // Controls shared by the head view, the model view's selection and the generation steps.
    const layerSelect = select("layer", DATA.layers.map((l, i) => [i, "layer " + l]), state.layer, (v) => {
      state.layer = v; redraw();
    });
    const headBoxes = DATA.heads.map((h, i) => {
      const box = el("input", { type: "checkbox", class: "head", "data-head": String(i), id: "head-" + i });
      box.checked = state.heads.has(i);
      box.addEventListener("change", () => {
        if (box.checked) state.heads.add(i); else state.heads.delete(i);
        redraw();
      });
      return el("label", { class: "head-box", style: "border-color:" + PALETTE[i % PALETTE.length] },
        [box, "head " + h]);
    });
    const threshold = el("input", { type: "number", id: "threshold", min: "0.001", max: "1", step: "0.01",
                                    value: String(state.threshold), style: "width:5em" });
    threshold.addEventListener("input", () => {
      const v = Number(threshold.value);
      if (v > 0 && v <= 1) { state.threshold = v; redraw(); }
    });
    const allHeads = el("button", { type: "button", id: "all-heads", text: "all heads", onclick: () => {
      DATA.heads.forEach((_, i) => state.heads.add(i)); syncBoxes(); redraw();
    } });
    function syncBoxes() { headBoxes.forEach((b, i) => { b.querySelector("input").checked = state.heads.has(i); }); }

    app.append(el("div", { class: "controls", id: "controls" }, [
      el("label", {}, ["Layer ", layerSelect]), el("span", {}, headBoxes), allHeads,
      el("label", {}, ["hide weights below ", threshold]),
    ]));

    // Head view: tokens down both sides, one line per (query, key) weight above the threshold.
    const ROW = 20, LX = 200, RX = 380, TOP = 30;
    const width = 580, height = TOP + T * ROW + 10;
    const left = el("div", { class: "left" }), side = el("div", { class: "side", id: "side" });
    app.append(el("div", { class: "split" }, [left, side]));
    left.append(el("h2", { text: "Head view" }),
      el("p", { class: "hint", text: "Each line joins a query token (left) to a key token (right); its opacity " +
        "is the attention weight, its colour the head. Hover a token to see only its lines." }));
    const svg = svgEl("svg", { class: "headview", id: "headview", width: width, height: height,
                               viewBox: "0 0 " + width + " " + height });
    const header = (x, anchor, text) => {
      const t = svgEl("text", { x: x, y: 16, "text-anchor": anchor, "font-weight": "bold" });
      t.textContent = text;
      return t;
    };
    svg.append(header(LX - 8, "end", "query"), header(RX + 8, "start", "key"));
    const lines = svgEl("g", { id: "lines" });
    const qText = [], kText = [];
    tokens.forEach((tok, i) => {
      const y = TOP + i * ROW + 14;
      for (const [side, x, anchor, list] of [["q", LX - 8, "end", qText], ["k", RX + 8, "start", kText]]) {
        const t = svgEl("text", { x: x, y: y, "text-anchor": anchor, class: "tok-" + side, "data-i": String(i) });
        if (tok.endsWith(" (unknown)")) t.classList.add("unknown");
        if (DATA.generation && i >= DATA.generation.prompt_length) t.classList.add("generated");
        t.textContent = shown(tok);
        const title = svgEl("title", {});
        title.textContent = tok + " (position " + i + ")";
        t.append(title);
        t.addEventListener("mouseenter", () => { state.focus = { side: side, i: i }; drawLines(); });
        t.addEventListener("mouseleave", () => { state.focus = null; drawLines(); });
        svg.append(t);
        list.push(t);
      }
    });
    svg.append(lines);
    left.append(el("div", { id: "headview-wrap" }, [svg]));

    function drawLines() {
      lines.textContent = "";
      const f = state.focus;
      let count = 0;
      for (const h of [...state.heads].sort((a, b) => a - b)) {
        const color = PALETTE[h % PALETTE.length];
        for (let i = 0; i < T; i++) {
          if (f && f.side === "q" && f.i !== i) continue;
          for (let j = 0; j < T; j++) {
            if (f && f.side === "k" && f.i !== j) continue;
            const w = at(state.layer, h, i, j);
            if (w <= 0 || w < state.threshold) continue;
            lines.append(svgEl("line", { x1: LX, y1: TOP + i * ROW + 10, x2: RX, y2: TOP + j * ROW + 10,
              stroke: color, "stroke-opacity": w.toFixed(4), "data-q": String(i), "data-k": String(j),
              "data-h": String(h) }));
            count++;
          }
        }
      }
      qText.forEach((t, i) => t.classList.toggle("active", !!f && f.side === "q" && f.i === i));
      kText.forEach((t, j) => t.classList.toggle("active", !!f && f.side === "k" && f.i === j));
      api.lineCount = count;
    }

    // Model view: one small matrix per layer and head; a click opens it in the head view.
    app.append(el("h2", { text: "Model view" }),
      el("p", { class: "hint", text: "Row i of a matrix is query i, column j key j; darker = more attention (each row " +
        "scaled to its largest weight). Click a matrix to open it in the head view." }));
    const grid = el("div", { class: "modelview", id: "modelview",
                             style: "grid-template-columns: auto repeat(" + H + ", 92px)" });
    const cells = [];
    for (let l = 0; l < L; l++) {
      grid.append(el("div", { class: "rowlabel", text: "layer " + DATA.layers[l] }));
      for (let h = 0; h < H; h++) {
        const canvas = el("canvas", { width: String(T), height: String(T) });
        const ctx = canvas.getContext("2d");
        const img = ctx.createImageData(T, T);
        for (let i = 0; i < T; i++) {
          let top = 1e-12;
          for (let j = 0; j < T; j++) top = Math.max(top, at(l, h, i, j));
          for (let j = 0; j < T; j++) {
            const s = at(l, h, i, j) / top, p = 4 * (i * T + j);
            img.data[p] = Math.round(255 - s * 227); img.data[p + 1] = Math.round(255 - s * 190);
            img.data[p + 2] = Math.round(255 - s * 95); img.data[p + 3] = 255;
          }
        }
        ctx.putImageData(img, 0, 0);
        const cell = el("div", { class: "cell", "data-layer": String(l), "data-head": String(h), onclick: () => {
          state.layer = l; state.heads = new Set([h]); layerSelect.value = String(l); syncBoxes(); redraw();
          svg.scrollIntoView({ behavior: "auto", block: "start" });
        } }, [canvas, "head " + DATA.heads[h]]);
        cells.push(cell);
        grid.append(cell);
      }
    }
    app.append(grid);

    const extra = DATA.kind === "lm" ? generationView() : (DATA.prediction ? predictionView() : null);

    function redraw() {
      drawLines();
      for (const c of cells) {
        const l = Number(c.dataset.layer), h = Number(c.dataset.head);
        c.classList.toggle("selected", l === state.layer && state.heads.has(h));
      }
      if (extra) extra();
    }

    // The weights of query i over the keys, for the chosen layer, heads averaged.
    function row(i) {
      const heads = [...state.heads];
      const out = new Float32Array(T);
      if (!heads.length) return out;
      for (const h of heads) for (let j = 0; j < T; j++) out[j] += at(state.layer, h, i, j) / heads.length;
      return out;
    }

    function predictionView() {
      const p = DATA.prediction;
      side.append(el("h2", { text: "Prediction" }));
      const line = el("p", { class: "prediction", id: "prediction" });
      line.append("Prediction: ", el("b", { text: p.label }), " (p = " + p.probability.toFixed(3) + ")");
      side.append(line);
      const top = [...p.probabilities].sort((a, b) => b[1] - a[1]).slice(0, 10);
      side.append(el("table", { class: "top" }, top.map(([label, q]) => el("tr", {}, [
        el("td", { text: label }), el("td", {}, [el("span", { class: "bar", style: "width:" + (q * 200) + "px" })]),
        el("td", { text: pct(q) })]))));
      side.append(el("p", { class: "hint", text: p.received_what[0].toUpperCase() + p.received_what.slice(1) + "." }));
      const top1 = Math.max(...p.received, 1e-12);
      side.append(el("div", { class: "tokens", id: "received" }, tokens.map((t, i) => el("span", {
        class: "tok", title: p.received[i].toFixed(4),
        style: "background: rgba(217, 72, 15, " + (p.received[i] / top1).toFixed(3) + ")", text: shown(t) }))));
      return null;
    }

    function generationView() {
      const g = DATA.generation;
      if (!g) return null;
      const steps = g.steps, n = steps.length;
      side.append(el("h2", { text: "Generation, step by step" }),
        el("p", { class: "hint", text: "Generated with " + g.how + ". At each step, the position that chose " +
          "the new token (framed) attended to the earlier tokens as shaded (the layer and heads chosen above, " +
          "heads averaged); the table gives the model's most likely next tokens." }));
      const range = el("input", { type: "range", id: "step", min: "1", max: String(n), value: "1" });
      const label = el("span", { id: "step-label" });
      const go = (s) => { state.step = Math.min(Math.max(s, 1), n); range.value = String(state.step); redraw(); };
      range.addEventListener("input", () => go(Number(range.value)));
      side.append(el("div", { class: "controls" }, [
        el("button", { type: "button", id: "prev", text: "\u25c0 previous", onclick: () => go(state.step - 1) }),
        range, el("button", { type: "button", id: "next", text: "next \u25b6", onclick: () => go(state.step + 1) }),
        label]));
      const seq = el("div", { class: "tokens", id: "gen-tokens" });
      const table = el("table", { class: "top", id: "gen-top" });
      side.append(seq, table);
      return function drawStep() {
        const step = steps[state.step - 1], q = step.query, w = row(q);
        const top1 = Math.max(...w.slice(0, q + 1), 1e-12);
        label.textContent = "step " + state.step + " of " + n + ": chose \u201c" + shown(step.token) +
          "\u201d (p = " + step.probability.toFixed(3) + ")";
        seq.textContent = "";
        for (let j = 0; j <= q + 1; j++) {
          const cls = "tok" + (j >= g.prompt_length ? " generated" : "") + (j === q ? " query" : "") +
            (j === q + 1 ? " next" : "");
          const alpha = j <= q ? w[j] / top1 : 0;
          seq.append(el("span", { class: cls, title: j <= q ? w[j].toFixed(4) : "the chosen token",
            style: "background: rgba(217, 72, 15, " + alpha.toFixed(3) + ")", text: shown(tokens[j]) }), " ");
        }
        table.textContent = "";
        const rows = step.top.some(([tok]) => tok === step.token) ? step.top
          : step.top.concat([[step.token, step.probability]]);  // the chosen token, if sampled from further down
        for (const [tok, p] of rows) {
          table.append(el("tr", { class: tok === step.token ? "chosen" : "" }, [
            el("td", { text: shown(tok) }), el("td", {}, [el("span", { class: "bar", style: "width:" + (p * 200) + "px" })]),
            el("td", { text: pct(p) + (tok === step.token ? " \u2190 chosen" : "") })]));
        }
      };
    }

    redraw();
    document.body.dataset.ready = "1";
  }

  // ------------------------------------------------------------------ ViT
  function vitPage() {
    const [rows, cols] = DATA.grid, N = rows * cols, T = N + 1;
    const images = DATA.images.map((im) => Object.assign({}, im, { A: decode(im.attention), img: new Image() }));
    const [L, H] = images[0].A.shape;
    const state = { image: 0, layer: DATA.initial.layer, head: DATA.initial.head ?? -1, mode: "cls", patch: null };
    api.state = state;
    const SIZE = 384;

    function scores(im, l, h) {
      // One value per patch: the query's attention (class token or a clicked patch), rollout or the mean.
      if (state.mode === "rollout") return im.rollout;
      if (state.mode === "mean") return im.mean;
      const q = state.mode === "patch" ? 1 + state.patch : 0;
      const out = new Float32Array(N);
      const heads = h < 0 ? [...Array(H).keys()] : [h];
      for (const hh of heads) {
        const base = ((l * H + hh) * T + q) * T;
        for (let p = 0; p < N; p++) out[p] += im.A.values[base + 1 + p] / heads.length;
      }
      return out;
    }

    function paint(canvas, im, s) {
      const ctx = canvas.getContext("2d"), size = canvas.width;
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(im.img, 0, 0, size, size);
      const heat = document.createElement("canvas");
      heat.width = cols; heat.height = rows;
      const hctx = heat.getContext("2d"), data = hctx.createImageData(cols, rows);
      let lo = Infinity, hi = -Infinity;  // min-max scaled, as attnlab attention-map draws it
      for (let p = 0; p < N; p++) { lo = Math.min(lo, s[p]); hi = Math.max(hi, s[p]); }
      const span = Math.max(hi - lo, 1e-12);
      for (let p = 0; p < N; p++) {
        const t = (s[p] - lo) / span, [r, g, b] = turbo(t);
        data.data.set([r, g, b, Math.round(255 * (0.05 + 0.6 * t))], 4 * p);  // translucent: the image shows
      }
      hctx.putImageData(data, 0, 0);
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(heat, 0, 0, size, size);
      if (state.mode === "patch") {
        const pr = Math.floor(state.patch / cols), pc = state.patch % cols;
        ctx.strokeStyle = "#ffffff"; ctx.lineWidth = Math.max(1, size / 128);
        ctx.strokeRect(pc * size / cols, pr * size / rows, size / cols, size / rows);
      }
    }

    const thumbs = el("div", { class: "thumbs", id: "thumbs" }, images.map((im, i) => {
      const t = el("img", { src: im.png, alt: im.name, title: im.name, "data-i": String(i) });
      t.addEventListener("click", () => { state.image = i; redraw(); });
      return t;
    }));
    const layerSelect = select("layer", DATA.layers.map((l, i) => [i, "layer " + l]), state.layer,
      (v) => { state.layer = v; if (state.mode !== "patch") state.mode = "cls"; syncMode(); redraw(); });
    const headSelect = select("head", [[-1, "mean of heads"]].concat(DATA.heads.map((h, i) => [i, "head " + h])),
      state.head, (v) => { state.head = v; if (state.mode !== "patch") state.mode = "cls"; syncMode(); redraw(); });
    const modes = [["cls", "class token's attention"], ["rollout", "attention rollout (all layers)"],
                   ["mean", "mean over all layers and heads"]];
    const radios = modes.map(([value, text]) => {
      const r = el("input", { type: "radio", name: "mode", value: value, id: "mode-" + value });
      r.addEventListener("change", () => { state.mode = value; state.patch = null; redraw(); });
      return el("label", {}, [r, text]);
    });
    function syncMode() {
      radios.forEach((lab) => { const r = lab.querySelector("input"); r.checked = r.value === state.mode; });
    }
    app.append(el("div", { class: "controls", id: "controls" }, [
      el("label", {}, ["Layer ", layerSelect]), el("label", {}, ["Head ", headSelect]), el("span", {}, radios)]));
    app.append(el("p", { class: "hint", text: "Click an image below to explore it. Click a patch to see that " +
      "patch's attention instead of the class token's; click it again to go back. Rollout and the mean use every " +
      "layer (heads averaged) and ignore the layer and head chosen." }), thumbs);

    const main = el("canvas", { class: "main", id: "main", width: String(SIZE), height: String(SIZE) });
    const labels = el("div", { class: "labels", id: "labels" });
    const what = el("p", { class: "hint", id: "what" });
    main.addEventListener("click", (e) => {
      const rect = main.getBoundingClientRect();
      const c = Math.min(cols - 1, Math.floor((e.clientX - rect.left) / rect.width * cols));
      const r = Math.min(rows - 1, Math.floor((e.clientY - rect.top) / rect.height * rows));
      const p = r * cols + c;
      if (state.mode === "patch" && state.patch === p) { state.mode = "cls"; state.patch = null; }
      else { state.mode = "patch"; state.patch = p; }
      syncMode(); redraw();
    });
    app.append(el("div", { class: "vit" }, [main, el("div", {}, [labels, what,
      el("p", {}, ["low ", el("span", { class: "legend" }, []), " high (from the smallest to the largest patch)"])])]));

    app.append(el("h2", { text: "Model view" }),
      el("p", { class: "hint", text: "The same query's attention in every layer and head; click one to choose it." }));
    const grid = el("div", { class: "modelview", id: "modelview",
                             style: "grid-template-columns: auto repeat(" + (H + 1) + ", 92px)" });
    const cells = [];
    for (let l = 0; l < L; l++) {
      grid.append(el("div", { class: "rowlabel", text: "layer " + DATA.layers[l] }));
      for (let h = -1; h < H; h++) {
        const canvas = el("canvas", { width: "84", height: "84" });
        const cell = el("div", { class: "cell", "data-layer": String(l), "data-head": String(h), onclick: () => {
          state.layer = l; state.head = h; layerSelect.value = String(l); headSelect.value = String(h);
          if (state.mode !== "patch") state.mode = "cls";
          syncMode(); redraw();
        } }, [canvas, h < 0 ? "mean" : "head " + DATA.heads[h]]);
        cells.push([cell, canvas, l, h]);
        grid.append(cell);
      }
    }
    app.append(grid);

    function redraw() {
      const im = images[state.image];
      paint(main, im, scores(im, state.layer, state.head));
      for (const [cell, canvas, l, h] of cells) {
        paint(canvas, im, scores(im, l, h));
        cell.classList.toggle("selected", state.mode !== "rollout" && state.mode !== "mean" &&
          l === state.layer && h === state.head);
      }
      thumbs.querySelectorAll("img").forEach((t, i) => t.classList.toggle("selected", i === state.image));
      labels.textContent = "";
      const right = im.true === null ? null : im.true === im.pred;
      labels.append(el("div", { text: im.name }),
        el("div", { text: "true: " + (im.true === null ? "unknown" : im.true) }),
        el("div", { class: right === null ? "" : (right ? "right" : "wrong"),
                    text: "predicted: " + im.pred + " (p = " + im.probability.toFixed(3) + ")" }));
      const where = "layer " + DATA.layers[state.layer] + ", " +
        (state.head < 0 ? "mean of heads" : "head " + DATA.heads[state.head]);
      what.textContent = state.mode === "rollout" ? "Attention rollout from the class token, through all layers." :
        state.mode === "mean" ? "The class token's attention, mean over all layers and heads." :
        state.mode === "patch" ? "Attention of patch " + state.patch + " (row " + Math.floor(state.patch / cols) +
          ", column " + (state.patch % cols) + "), " + where + "." :
        "The class token's attention, " + where + ".";
    }

    syncMode();
    let waiting = images.length;
    for (const im of images) {
      im.img.onload = () => { if (--waiting === 0) { redraw(); document.body.dataset.ready = "1"; } };
      im.img.src = im.png;
    }
  }
})();
