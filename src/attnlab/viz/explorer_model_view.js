// Model view of a text model: one small matrix per layer and head; pick(layer, head) runs on a
// click (the page opens that head in the head view). Redraw frames the matrices the state selects.
function modelView(parent, text, state, pick) {
  parent.append(el("h2", { text: "Model view" }),
    el("p", { class: "hint", text: "Row i of a matrix is query i, column j key j; darker = more attention (each row " +
      "scaled to its largest weight). Click a matrix to open it in the head view." }));
  const grid = el("div", { class: "modelview", id: "modelview",
                           style: "grid-template-columns: auto repeat(" + text.H + ", 92px)" });
  const cells = [];
  for (let l = 0; l < text.L; l++) {
    grid.append(el("div", { class: "rowlabel", text: "layer " + text.layers[l] }));
    for (let h = 0; h < text.H; h++) {
      const cell = el("div", { class: "cell", "data-layer": String(l), "data-head": String(h),
                               onclick: () => pick(l, h) }, [attentionMatrix(text, l, h), "head " + text.heads[h]]);
      cells.push(cell);
      grid.append(cell);
    }
  }
  parent.append(grid);
  return {
    redraw() {
      for (const c of cells) {
        const l = Number(c.dataset.layer), h = Number(c.dataset.head);
        c.classList.toggle("selected", l === state.layer && state.heads.has(h));
      }
    },
  };
}

function attentionMatrix(text, l, h) {
  // A T x T canvas, one pixel per weight, white -> dark blue, each row scaled to its largest weight.
  const T = text.T;
  const canvas = el("canvas", { width: String(T), height: String(T) });
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(T, T);
  for (let i = 0; i < T; i++) {
    let top = 1e-12;
    for (let j = 0; j < T; j++) top = Math.max(top, text.at(l, h, i, j));
    for (let j = 0; j < T; j++) {
      const s = text.at(l, h, i, j) / top, p = 4 * (i * T + j);
      img.data[p] = Math.round(255 - s * 227); img.data[p + 1] = Math.round(255 - s * 190);
      img.data[p + 2] = Math.round(255 - s * 95); img.data[p + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}
