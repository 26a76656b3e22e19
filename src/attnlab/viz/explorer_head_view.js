// Head view: tokens down both sides, one line per (query, key) weight above the threshold, in the
// colour of its head; hovering a token shows only its lines. Reads state.layer, .heads, .threshold
// and .focus (the hovered token, which it sets itself); api.lineCount is the number of lines drawn.
function headView(parent, text, state) {
  const ROW = 20, LX = 200, RX = 380, TOP = 30;
  const width = 580, height = TOP + text.T * ROW + 10;
  parent.append(el("h2", { text: "Head view" }),
    el("p", { class: "hint", text: "Each line joins a query token (left) to a key token (right); its opacity " +
      "is the attention weight, its colour the head. Hover a token to see only its lines." }));
  const svg = svgEl("svg", { class: "headview", id: "headview", width: width, height: height,
                             viewBox: "0 0 " + width + " " + height });
  const header = (x, anchor, label) => {
    const t = svgEl("text", { x: x, y: 16, "text-anchor": anchor, "font-weight": "bold" });
    t.textContent = label;
    return t;
  };
  svg.append(header(LX - 8, "end", "query"), header(RX + 8, "start", "key"));
  const lines = svgEl("g", { id: "lines" });
  const qText = [], kText = [];
  text.tokens.forEach((tok, i) => {
    const y = TOP + i * ROW + 14;
    for (const [side, x, anchor, list] of [["q", LX - 8, "end", qText], ["k", RX + 8, "start", kText]]) {
      const t = svgEl("text", { x: x, y: y, "text-anchor": anchor, class: "tok-" + side, "data-i": String(i) });
      if (tok.endsWith(" (unknown)")) t.classList.add("unknown");
      if (text.generation && i >= text.generation.prompt_length) t.classList.add("generated");
      t.textContent = shown(tok);
      const title = svgEl("title", {});
      title.textContent = tok + " (position " + i + ")";
      t.append(title);
      t.addEventListener("mouseenter", () => { state.focus = { side: side, i: i }; redraw(); });
      t.addEventListener("mouseleave", () => { state.focus = null; redraw(); });
      svg.append(t);
      list.push(t);
    }
  });
  svg.append(lines);
  parent.append(el("div", { id: "headview-wrap" }, [svg]));

  function redraw() {
    lines.textContent = "";
    const f = state.focus, T = text.T;
    let count = 0;
    for (const h of [...state.heads].sort((a, b) => a - b)) {
      const color = PALETTE[h % PALETTE.length];
      for (let i = 0; i < T; i++) {
        if (f && f.side === "q" && f.i !== i) continue;
        for (let j = 0; j < T; j++) {
          if (f && f.side === "k" && f.i !== j) continue;
          const w = text.at(state.layer, h, i, j);
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
  return { svg: svg, redraw: redraw };
}
