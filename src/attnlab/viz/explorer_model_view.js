// Model view of a text model: one small matrix per layer and head, all on one colour scale (0 to the
// largest weight on the page; each row scaled to its own largest weight only when state.rowScale is
// chosen), a colour bar, a read-out of the cell under the pointer, and the per-head statistics.
// pick(layer, head) runs on a click (the page opens that head in the head view).
function modelView(parent, text, state, pick) {
  let top = 0;
  for (let l = 0; l < text.L; l++) for (let h = 0; h < text.H; h++) top = Math.max(top, matrixMax(text, l, h));
  top = Math.max(top, 1e-12);
  parent.append(el("h2", { text: "Model view" }),
    el("p", { class: "hint", text: "Row i of a matrix is query i, column j key j; every matrix is drawn on the " +
      "colour bar's scale, so colours compare across heads. Hover a matrix for a weight; click it to open it in " +
      "the head view." }));
  const scale = select("scale", [[0, "one scale: 0 to the largest weight on the page"],
                                 [1, "row scaling: each row to its own largest weight"]], 0, (v) => {
    state.rowScale = v === 1; draw();
  });
  const bar = colorBar("mv-colorbar");
  const readout = el("p", { class: "readout", id: "cell-readout", text: "Hover a matrix for a weight." });
  parent.append(el("div", { class: "controls" }, [el("label", {}, ["Colours ", scale]), bar.node]), readout);
  const grid = el("div", { class: "modelview", id: "modelview",
                           style: "grid-template-columns: auto repeat(" + text.H + ", 92px)" });
  const cells = [];
  for (let l = 0; l < text.L; l++) {
    grid.append(el("div", { class: "rowlabel", text: "layer " + text.layers[l] }));
    for (let h = 0; h < text.H; h++) {
      const canvas = el("canvas", { width: String(text.S), height: String(text.T) });
      canvas.addEventListener("mousemove", (e) => {
        // offsetX/Y and clientWidth/Height are inside the border: the weights' own pixels
        const i = Math.min(text.T - 1, Math.max(0, Math.floor(e.offsetY / canvas.clientHeight * text.T)));
        const j = Math.min(text.S - 1, Math.max(0, Math.floor(e.offsetX / canvas.clientWidth * text.S)));
        const w = text.at(l, h, i, j);
        readout.textContent = weightWords(text, l, h, i, j, w);
        canvas.title = readout.textContent;
        Object.assign(readout.dataset, { layer: String(l), head: String(h), q: String(i), k: String(j),
                                         weight: String(w) });
      });
      const cell = el("div", { class: "cell", "data-layer": String(l), "data-head": String(h),
                               onclick: () => pick(l, h) }, [canvas, "head " + text.heads[h]]);
      cells.push([cell, canvas, l, h]);
      grid.append(cell);
    }
  }
  parent.append(grid);

  const cross = text.keys !== text.tokens;  // queries and keys from two sequences: no distance between them
  parent.append(el("h2", { text: "Heads at a glance" }),
    el("p", { class: "hint", text: cross ? crossStatsWords() : statsWords(text.causal) }));
  const columns = [
    { key: "entropy", label: "entropy (bits)", title: "spread of a query's attention: 0 = all on one key" }];
  if (!cross) columns.push({ key: "distance", label: "mean distance", title: "how far back or ahead a query looks, in tokens" });
  columns.push({ key: "first", label: "to first token", title: "share of the attention on the first token" });
  if (text.causal) columns.push({ key: "previous", label: "to previous token", title: "share on the token before" });
  columns.push({ key: "punctuation", label: "to punctuation", title: "share on punctuation tokens" });
  const table = statsTable(parent, columns, pick);
  const punct = text.keys.map(isPunctuation), rows = [];
  for (let l = 0; l < text.L; l++) {
    for (let h = 0; h < text.H; h++) {
      rows.push(Object.assign({ l: l, h: h, layer: text.layers[l], head: text.heads[h] },
        headStatistics((i, j) => text.at(l, h, i, j), text.T, { causal: text.causal, punct: punct,
                                                                 keys: cross ? text.S : undefined })));
    }
  }
  table.show(rows);
  api.headStats = rows;

  let drawnPair = state.pair;
  function draw() {
    drawnPair = state.pair;
    for (const [, canvas, l, h] of cells) {
      attentionMatrix(canvas, text, l, h, state.rowScale ? null : top, (i, j) => pairAllows(text, state, i, j));
    }
    if (state.rowScale) bar.set(0, "row max", "row scaling: each row is drawn from 0 to its own largest weight, " +
      "so colours do not compare across rows or heads");
    else bar.set(0, top, "one scale for every matrix: 0 to the largest weight on the page");
  }
  draw();
  return {
    redraw() {
      if (state.pair !== drawnPair) draw();  // a sentence pair's filter greys the weights it hides
      for (const [cell, , l, h] of cells) cell.classList.toggle("selected", l === state.layer && state.heads.has(h));
    },
  };
}

function statsWords(causal) {
  return "Per head, means over the queries" + (causal ? " after the first (which can only attend to itself)" : "") +
    ": the entropy of a query's weights in bits, the mean distance from a query to the keys it attends to, in " +
    "tokens, and the share of its attention on the first token" + (causal ? ", on the previous token" : "") +
    " and on punctuation. Click a column to sort by it, a row to open that head.";
}

function crossStatsWords() {
  return "Per head, means over the target pieces (the queries): the entropy of a query's weights over the source " +
    "pieces in bits, and the share of its attention on the first source piece and on punctuation. Click a column " +
    "to sort by it, a row to open that head.";
}

function matrixMax(text, l, h) {
  let top = 0;
  for (let i = 0; i < text.T; i++) for (let j = 0; j < text.S; j++) top = Math.max(top, text.at(l, h, i, j));
  return top;
}

const HIDDEN_RGB = [225, 225, 225];  // a weight a sentence-pair filter hides
function attentionMatrix(canvas, text, l, h, top, allows) {
  // A T x S canvas, one pixel per weight, in viridis from 0 to top (null: each row to its largest weight);
  // allows(i, j) false: light grey (a sentence pair's filter).
  const T = text.T, S = text.S;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(S, T);
  for (let i = 0; i < T; i++) {
    let scale = top;
    if (scale === null) {
      scale = 1e-12;
      for (let j = 0; j < S; j++) scale = Math.max(scale, text.at(l, h, i, j));
    }
    for (let j = 0; j < S; j++) {
      const [r, g, b] = allows && !allows(i, j) ? HIDDEN_RGB : viridis(text.at(l, h, i, j) / scale), p = 4 * (i * S + j);
      img.data[p] = r; img.data[p + 1] = g; img.data[p + 2] = b; img.data[p + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
}
