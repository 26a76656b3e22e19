// Head view: tokens down both sides, one line per (query, key) weight above the threshold, in the
// colour of its head; hovering a token shows only its lines and, per head, what it attends to and what
// attends to it; hovering a line shows its weight (#line-readout). Reads state.layer, .heads,
// .threshold, .focus (the hovered token, which it sets itself) and .pinned (the query the generation
// step-through chose); api.lineCount is the number of lines drawn. It scrolls within its own pane.
function headView(parent, text, state) {
  // Queries (text.tokens) on the left, keys (text.keys) on the right: a translation's cross-attention joins
  // each target piece to the source pieces.
  const ROW = 20, LX = 200, RX = 380, TOP = 30;
  const width = 580, height = TOP + Math.max(text.T, text.S) * ROW + 10;
  const names = text.names || ["query", "key"];
  parent.append(el("h2", { text: "Head view" }),
    el("p", { class: "hint", text: "Each line joins a " + names[0] + " token (left) to a " + names[1] + " token " +
      "(right); its opacity is the attention weight, its colour the head. Hover a line for its weight, a token for " +
      "its lines and its weights per head." + (text.what ? " Shown: " + text.what + "." : "") }));
  const svg = svgEl("svg", { class: "headview", id: "headview", width: width, height: height,
                             viewBox: "0 0 " + width + " " + height });
  const header = (x, anchor, label) => {
    const t = svgEl("text", { x: x, y: 16, "text-anchor": anchor, "font-weight": "bold" });
    t.textContent = label;
    return t;
  };
  svg.append(header(LX - 8, "end", names[0]), header(RX + 8, "start", names[1]));
  const lines = svgEl("g", { id: "lines" });
  const qText = [], kText = [];
  const hover = (side, i) => {
    if (state.hoverBlocked) return;  // a click moved the page under a still pointer (textPage)
    if (state.focus && state.focus.side === side && state.focus.i === i) return;
    state.focus = { side: side, i: i };
    redraw();
  };
  for (const [side, x, anchor, list, tokens] of [["q", LX - 8, "end", qText, text.tokens],
                                                  ["k", RX + 8, "start", kText, text.keys]]) {
    tokens.forEach((tok, i) => {
      const y = TOP + i * ROW + 14;
      const t = svgEl("text", { x: x, y: y, "text-anchor": anchor, class: "tok-" + side, "data-i": String(i) });
      if (text.segments && text.segments[i]) t.classList.add("seg-b");
      if (tok.endsWith(" (unknown)")) t.classList.add("unknown");
      if (text.generation && i >= text.generation.prompt_length) t.classList.add("generated");
      if (text.kind === "translation" && side === "q" && text.view === "cross") t.classList.add("generated");
      t.textContent = shown(tok);
      const title = svgEl("title", {});
      title.textContent = tok + " (position " + i + ")";
      t.append(title);
      t.addEventListener("mouseover", () => hover(side, i));
      t.addEventListener("mousemove", () => hover(side, i));
      t.addEventListener("mouseleave", () => { if (state.focus) { state.focus = null; redraw(); } });
      svg.append(t);
      list.push(t);
    });
  }
  svg.append(lines);
  const lineReadout = el("p", { class: "readout", id: "line-readout", text: "Hover a line for its weight." });
  lines.addEventListener("mouseover", (e) => {
    const line = e.target;
    if (!line.dataset || line.dataset.q === undefined) return;
    const q = Number(line.dataset.q), k = Number(line.dataset.k), h = Number(line.dataset.h);
    const w = text.at(state.layer, h, q, k), words = weightWords(text, state.layer, h, q, k, w);
    if (!line.firstChild) line.append(Object.assign(svgEl("title", {}), { textContent: words }));
    lineReadout.textContent = words;
    Object.assign(lineReadout.dataset, { layer: String(state.layer), head: String(h), q: String(q), k: String(k),
                                         weight: String(w) });
  });
  const hidden = el("p", { class: "readout", id: "hidden" });
  const unpin = el("button", { type: "button", id: "unpin", text: "show every query", onclick: () => {
    state.pinned = null; redraw();
  } });
  // The token read-out keeps its height (a line per head), so hovering never moves the tokens under the pointer.
  const tokenReadout = el("div", { id: "token-readout", style: "min-height:" + (1.6 * (text.H + 2)).toFixed(1) + "em" });
  const wrap = el("div", { id: "headview-wrap" }, [svg]);
  parent.append(el("div", { class: "readouts" }, [hidden, unpin, lineReadout]), tokenReadout, wrap);

  function redraw() {
    lines.textContent = "";
    const f = state.focus || state.pinned, T = text.T, S = text.S;
    let count = 0, kept = 0, all = 0;
    const shownHeads = [...state.heads].sort((a, b) => a - b);
    shownHeads.forEach((h, n) => {
      // Several heads: each head's lines a little apart, so that their colours sit side by side, never mixed.
      const color = headColor(h), dash = headDash(h), dy = (n - (shownHeads.length - 1) / 2) * headGap(shownHeads.length);
      for (let i = 0; i < T; i++) {
        if (f && f.side === "q" && f.i !== i) continue;
        for (let j = 0; j < S; j++) {
          if (f && f.side === "k" && f.i !== j) continue;
          if (!pairAllows(text, state, i, j)) continue;
          const w = text.at(state.layer, h, i, j);
          all += w;
          if (w <= 0 || w < state.threshold) continue;
          kept += w;
          const line = svgEl("line", { x1: LX, y1: TOP + i * ROW + 10 + dy, x2: RX, y2: TOP + j * ROW + 10 + dy,
            stroke: color, "stroke-opacity": w.toFixed(4), "data-q": String(i), "data-k": String(j),
            "data-h": String(h) });
          if (dash) line.setAttribute("stroke-dasharray", dash);
          lines.append(line);
          count++;
        }
      }
    });
    qText.forEach((t, i) => t.classList.toggle("active", !!f && f.side === "q" && f.i === i));
    kText.forEach((t, j) => t.classList.toggle("active", !!f && f.side === "k" && f.i === j));
    if (text.segments) {  // a pair filter: the tokens of the other sentence fade
      const want = state.pair === "all" ? null : state.pair.split("").map((s) => (s === "A" ? 0 : 1));
      qText.forEach((t, i) => t.classList.toggle("dim", !!want && text.segments[i] !== want[0]));
      kText.forEach((t, j) => t.classList.toggle("dim", !!want && text.segments[j] !== want[1]));
    }
    const share = all > 0 ? (all - kept) / all : 0;
    hidden.textContent = "Lines under " + state.threshold + " hidden: " + pct(share) + " of the weight" +
      (f ? " of " + (f.side === "q" ? "query" : "key") + " \u201c" + shown((f.side === "q" ? text.tokens
                                                                                  : text.keys)[f.i]) + "\u201d" : "") +
      (state.pair && state.pair !== "all" ? ", sentences " + state.pair[0] + " \u2192 " + state.pair[1] : "") +
      " (" + count + " lines drawn" + (state.pinned && !state.focus ? ", the generation step's query" : "") + ").";
    hidden.dataset.hidden = String(share);
    unpin.hidden = !state.pinned;
    tokenTable(tokenReadout, text, state, f);
    api.lineCount = count;
  }

  function scrollTo(i) {  // bring row i to the middle of the pane (the page itself does not move)
    wrap.scrollTop = Math.max(0, TOP + i * ROW - wrap.clientHeight / 2);
  }
  return { svg: svg, redraw: redraw, scrollTo: scrollTo };
}

function weightWords(text, l, h, q, k, w) {
  const names = text.names || ["query", "key"];
  return "layer " + text.layers[l] + ", head " + text.heads[h] + ": " + names[0] + " \u201c" + shown(text.tokens[q]) +
    "\u201d (" + q + ") \u2192 " + names[1] + " \u201c" + shown(text.keys[k]) + "\u201d (" + k + "): weight " +
    w.toFixed(4);
}

function headGap(n) { return n > 1 ? Math.min(3, 14 / (n - 1)) : 0; }

function tokenTable(parent, text, state, f) {
  // Per head of the layer: the three keys token f.i attends to most, and the three queries attending to it most.
  parent.textContent = "";
  if (!f) {
    parent.append(el("p", { class: "hint", text: "Hover a token: per head, the keys it attends to most and the " +
      "queries that attend to it most, with their weights." }));
    return;
  }
  // Queries and keys apart (a translation's cross-attention): a query's keys, or a key's queries.
  const i = f.i, T = text.T, S = text.S, top3 = (pairs) => pairs.sort((a, b) => b[1] - a[1]).slice(0, 3);
  const square = text.keys === text.tokens, isKey = f.side === "k";
  const cells = (pairs, h, tokens) => el("td", {}, pairs.map(([j, w]) => el("span", { class: "pick",
    "data-j": String(j), "data-w": String(w), title: "position " + j + ": weight " + w.toFixed(4) }, [
    el("span", { class: "bar", style: "width:" + Math.max(1, Math.round(w * 40)) + "px; background:" + headColor(h) }),
    " " + shown(tokens[j]) + " " + w.toFixed(3)])));
  const rows = text.heads.map((name, h) => {
    const to = [], from = [];
    if (square || !isKey) for (let j = 0; j < S; j++) to.push([j, text.at(state.layer, h, i, j)]);
    if (square || isKey) for (let j = 0; j < T; j++) from.push([j, text.at(state.layer, h, j, i)]);
    return el("tr", { class: state.heads.has(h) ? "on" : "off", "data-head": String(h) }, [
      el("td", {}, [el("span", { class: "swatch", style: "background:" + headColor(h) }), "head " + name]),
      ...(square || !isKey ? [cells(top3(to), h, text.keys)] : []),
      ...(square || isKey ? [cells(top3(from), h, text.tokens)] : [])]);
  });
  parent.append(el("table", { class: "top token-table" }, [el("tr", {}, [
    el("th", { text: "\u201c" + shown((isKey ? text.keys : text.tokens)[i]) + "\u201d (" + i + "), layer " +
      text.layers[state.layer] }),
    ...(square || !isKey ? [el("th", { text: "attends to most" })] : []),
    ...(square || isKey ? [el("th", { text: "attended to most by" })] : [])]), ...rows]));
}
