// Two inputs side by side (attnlab explore --compare): for the layer and each head chosen above, the
// weights of A (the page's text), of B (data.compare) and their difference A - B over the aligned positions
// (position by position up to the shorter text, as data.compare.alignment says). A and B share one viridis
// scale; the difference has its own diverging scale, symmetric about 0, with a colour bar. Hovering a cell
// shows the three numbers (#diff-readout). api.compare exposes the aligned size and the difference.
// Purple-white-orange (PuOr, colour-blind safe): -1 purple, 0 white, +1 orange.
const DIVERGING = [[45, 0, 75], [84, 39, 136], [128, 115, 172], [178, 171, 210], [216, 218, 235], [247, 247, 247],
                   [254, 224, 182], [253, 184, 99], [224, 130, 20], [179, 88, 6], [127, 59, 8]];
function diverging(t) {  // t in [-1, 1]
  const x = (Math.min(Math.max(t, -1), 1) + 1) / 2 * (DIVERGING.length - 1);
  const i = Math.min(Math.floor(x), DIVERGING.length - 2), f = x - i;
  return DIVERGING[i].map((c, k) => Math.round(c + f * (DIVERGING[i + 1][k] - c)));
}
const DIVERGING_CSS = "linear-gradient(to right, " +
  DIVERGING.map((c, i) => "rgb(" + c.join(",") + ") " + (100 * i / (DIVERGING.length - 1)) + "%").join(", ") + ")";

function compareData(text) {
  // B's weights decoded, b(l, h, i, j), and diff(l, h, i, j) = A - B for i, j < n (the aligned positions).
  const B = decode(text.compare.attention);
  const [, H, T] = B.shape;
  const b = (l, h, i, j) => B.values[((l * H + h) * T + i) * T + j];
  return { T: T, n: text.compare.aligned, tokens: text.compare.tokens, b: b,
           diff: (l, h, i, j) => text.at(l, h, i, j) - b(l, h, i, j) };
}

function compareView(parent, text, state) {
  const cmp = compareData(text), c = text.compare;
  api.compare = { n: cmp.n, diff: cmp.diff, b: cmp.b, range: 0 };
  let top = 1e-12;  // one scale for A and B: 0 to the largest weight of either
  for (let l = 0; l < text.L; l++) {
    for (let h = 0; h < text.H; h++) {
      top = Math.max(top, matrixMax(text, l, h));
      for (let i = 0; i < cmp.T; i++) for (let j = 0; j < cmp.T; j++) top = Math.max(top, cmp.b(l, h, i, j));
    }
  }
  const section = el("section", { id: "compare" });
  parent.append(section);
  section.append(el("h2", { text: "Comparison: A and B" }),
    el("p", { class: "hint", id: "alignment", text: c.alignment + ". A and B are drawn on one scale (0 to the " +
      "largest weight of either), A \u2212 B on its own, symmetric about 0: orange where A attends more, purple " +
      "where B does. Row i is query i, column j key j; the layer and heads are those chosen above." }));
  if (c.checkpoint !== text.checkpoint) {  // --compare-checkpoint: B is another model's reading
    section.append(el("p", { id: "compare-model", text: "A: " + text.model + (text.checkpoint ? " \u2014 " +
      text.checkpoint : "") + ". B: " + c.model + (c.checkpoint ? " \u2014 " + c.checkpoint : "") + "." }));
  }
  section.append(el("div", { class: "tokens", id: "compare-tokens" }, [el("b", { text: "B: " }),
    ...cmp.tokens.map((t, i) => el("span", { class: "tok" + (i >= c.common_prefix ? " differs" : ""),
                                            title: "position " + i, text: shown(t) }))]));
  for (const n of c.notes || []) section.append(el("p", { class: "hint", text: "B: " + n }));
  if (c.prediction) {
    const line = el("p", { class: "prediction", id: "compare-prediction" });
    line.append("B: prediction ", el("b", { text: c.prediction.label }),
      " (p = " + c.prediction.probability.toFixed(3) + "); A: " + text.prediction.label +
      " (p = " + text.prediction.probability.toFixed(3) + ")");
    section.append(line);
  }
  const abBar = colorBar("compare-colorbar"), diffBar = colorBar("diff-colorbar");
  diffBar.node.querySelector(".cb-ramp").style.background = DIVERGING_CSS;
  abBar.set(0, top, "A and B: 0 to the largest weight of either");
  const readout = el("p", { class: "readout", id: "diff-readout", text: "Hover a matrix for A, B and A \u2212 B." });
  section.append(el("div", { class: "controls" }, [abBar.node, diffBar.node]), readout);
  const rows = el("div", { class: "compare-rows", id: "compare-rows" });
  section.append(rows);

  function matrix(size, color, l, h, what) {
    // one cell size for all three, so that position i sits at the same height in A, B and A - B
    const side = (240 * size / Math.max(text.T, cmp.T) + 4).toFixed(1) + "px";
    const canvas = el("canvas", { width: String(size), height: String(size), "data-what": what,
                                  "data-layer": String(l), "data-head": String(h),
                                  style: "width:" + side + ";height:" + side });
    const ctx = canvas.getContext("2d"), img = ctx.createImageData(size, size);
    for (let i = 0; i < size; i++) {
      for (let j = 0; j < size; j++) {
        const [r, g, bl] = color(i, j), p = 4 * (i * size + j);
        img.data[p] = r; img.data[p + 1] = g; img.data[p + 2] = bl; img.data[p + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    canvas.addEventListener("mousemove", (e) => {
      const i = Math.min(size - 1, Math.max(0, Math.floor(e.offsetY / canvas.clientHeight * size)));
      const j = Math.min(size - 1, Math.max(0, Math.floor(e.offsetX / canvas.clientWidth * size)));
      const a = i < text.T && j < text.T ? text.at(l, h, i, j) : null;
      const b = i < cmp.T && j < cmp.T ? cmp.b(l, h, i, j) : null;
      const d = a !== null && b !== null && i < cmp.n && j < cmp.n ? a - b : null;
      readout.textContent = "layer " + text.layers[l] + ", head " + text.heads[h] + ", query " + i + ", key " + j +
        ": A " + (a === null ? "\u2014" : a.toFixed(4)) + ", B " + (b === null ? "\u2014" : b.toFixed(4)) +
        ", A \u2212 B " + (d === null ? "\u2014 (not aligned)" : d.toFixed(4));
      canvas.title = readout.textContent;
      Object.assign(readout.dataset, { layer: String(l), head: String(h), q: String(i), k: String(j),
        a: String(a), b: String(b), diff: String(d) });
    });
    return el("figure", {}, [canvas, el("figcaption", { text: what })]);
  }

  function redraw() {
    const l = state.layer, heads = [...state.heads].sort((x, y) => x - y);
    let range = 0;  // the largest |A - B| over the aligned part of what is shown
    for (const h of heads) {
      for (let i = 0; i < cmp.n; i++) {
        for (let j = 0; j < cmp.n; j++) range = Math.max(range, Math.abs(cmp.diff(l, h, i, j)));
      }
    }
    const span = Math.max(range, 1e-12);
    api.compare.range = range;
    diffBar.set(-range, range, "A \u2212 B, layer " + text.layers[l] + ": \u00b1 the largest difference shown");
    rows.textContent = "";
    for (const h of heads) {
      rows.append(el("div", { class: "compare-row", "data-head": String(h) }, [
        el("div", { class: "rowlabel", text: "layer " + text.layers[l] + ", head " + text.heads[h] }),
        matrix(text.T, (i, j) => viridis(text.at(l, h, i, j) / top), l, h, "A"),
        matrix(cmp.T, (i, j) => viridis(cmp.b(l, h, i, j) / top), l, h, "B"),
        matrix(cmp.n, (i, j) => diverging(cmp.diff(l, h, i, j) / span), l, h, "A \u2212 B")]));
    }
  }
  return { redraw: redraw };
}
