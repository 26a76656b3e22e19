// Export, offline: the weights of the current view (the layer and heads chosen above) as JSON or CSV, the
// chosen layer's heatmap of the first chosen head as PNG (the model view's own canvas, one pixel per weight),
// and the head view as SVG; on a ViT page, the map's patch scores as JSON or CSV and the image under its map
// as PNG. Each is a download made in the page (a Blob or data URL): nothing is sent anywhere.
// The numbers are the page's own (api.weight), so a file equals what the page shows.
function selectionWeights(text, state) {
  // {layer, heads, tokens, weights[head][query][key]} of the current view; layer and heads as numbered in the model
  const heads = [...state.heads].sort((a, b) => a - b);
  const weights = heads.map((h) => text.tokens.map((_, i) => text.keys.map((_, j) => text.at(state.layer, h, i, j))));
  const out = { layer: text.layers[state.layer], heads: heads.map((h) => text.heads[h]), tokens: text.tokens,
                weights: weights,
                what: "weights[head][query][key]: the attention of each query token on each key token" };
  if (text.keys !== text.tokens) {  // a translation's cross-attention: the keys are the source pieces
    out.keys = text.keys;
    out.what = "weights[head][query][key]: the attention of each target piece (query) on each source piece (key)";
  }
  if (text.kind === "translation") out.attention = text.view;
  if (text.compare) {  // --compare: B's weights too, and A - B over the aligned positions (JSON only)
    const cmp = compareData(text), n = cmp.n, range = (m) => [...Array(m).keys()];
    const grid = (m, f) => heads.map((h) => range(m).map((i) => range(m).map((j) => f(state.layer, h, i, j))));
    out.compare = { tokens: cmp.tokens, alignment: text.compare.alignment, aligned: n,
                    weights: grid(cmp.T, cmp.b), difference: grid(n, cmp.diff) };
  }
  return out;
}

function csvCell(value) {
  const s = String(value);
  return /[",\n\r]/.test(s) ? "\"" + s.replace(/"/g, "\"\"") + "\"" : s;
}

function selectionCsv(sel) {
  const lines = ["layer,head,query,query_token,key,key_token,weight"];
  sel.heads.forEach((head, n) => {
    sel.weights[n].forEach((row, i) => row.forEach((w, j) => {
      lines.push([sel.layer, head, i, csvCell(sel.tokens[i]), j, csvCell((sel.keys || sel.tokens)[j]), w].join(","));
    }));
  });
  return lines.join("\n") + "\n";
}

function download(name, href) {
  const a = el("a", { href: href, download: name, style: "display:none" });
  document.body.append(a);
  a.click();
  a.remove();
}

function downloadBlob(name, type, content) {
  const url = URL.createObjectURL(new Blob([content], { type: type }));
  download(name, url);
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function exportButtons(parent, text, state) {
  const stem = () => "attention-layer" + text.layers[state.layer] + "-head" +
    [...state.heads].sort((a, b) => a - b).map((h) => text.heads[h]).join("_");
  const none = () => {
    if (state.heads.size) return false;
    alert("Choose at least one head to export.");
    return true;
  };
  const button = (id, label, title, onclick) => el("button", { type: "button", id: id, text: label, title: title,
                                                               onclick: onclick });
  parent.append(el("span", { class: "export", id: "export" }, ["Save ",
    button("export-json", "JSON", "the weights of the chosen layer and heads, with the tokens", () => {
      if (!none()) downloadBlob(stem() + ".json", "application/json", JSON.stringify(selectionWeights(text, state)));
    }),
    button("export-csv", "CSV", "the weights of the chosen layer and heads, one row per (head, query, key)", () => {
      if (!none()) downloadBlob(stem() + ".csv", "text/csv", selectionCsv(selectionWeights(text, state)));
    }),
    button("export-png", "heatmap PNG", "the first chosen head's matrix, one pixel per weight, on the page's scale",
      () => {
        if (none()) return;
        const h = Math.min(...state.heads);
        const canvas = document.querySelector("#modelview .cell[data-layer='" + state.layer + "'][data-head='" + h +
                                              "'] canvas");
        download("attention-layer" + text.layers[state.layer] + "-head" + text.heads[h] + ".png",
                 canvas.toDataURL("image/png"));
      }),
    button("export-svg", "head view SVG", "the head view as drawn now", () => {
      const svg = document.getElementById("headview").cloneNode(true);
      svg.setAttribute("xmlns", SVG_NS);
      downloadBlob(stem() + ".svg", "image/svg+xml", new XMLSerializer().serializeToString(svg));
    })]));
}

function mapExport(vit, state) {
  // The map shown now: one score per patch of the chosen image, as a rows x cols grid, and what it is.
  const im = vit.images[state.image], s = scores(vit, state, im, state.layer, state.head);
  const what = state.mode === "rollout" ? "attention rollout" : state.mode === "mean" ? "mean over all layers and heads"
    : (state.mode === "patch" ? "patch " + state.patch : "the class token") + "'s attention to each patch";
  return { image: im.name, layer: vit.layers[state.layer], head: state.head < 0 ? "mean" : vit.heads[state.head],
           mode: state.mode, patch: state.patch, what: what, rows: vit.rows, cols: vit.cols,
           scores: [...Array(vit.rows).keys()].map((r) => Array.from(s.slice(r * vit.cols, (r + 1) * vit.cols))) };
}

function imageExportButtons(parent, vit, state) {
  // The ViT page's export: the map's patch scores as JSON or CSV, the image under its map as PNG.
  const stem = () => "attention-map-image" + state.image + "-layer" + vit.layers[state.layer] + "-" +
    (state.head < 0 ? "mean" : "head" + vit.heads[state.head]) + "-" + state.mode;
  const button = (id, label, title, onclick) => el("button", { type: "button", id: id, text: label, title: title,
                                                               onclick: onclick });
  parent.append(el("span", { class: "export", id: "export" }, ["Save ",
    button("export-json", "JSON", "the patch scores of the map shown", () => {
      downloadBlob(stem() + ".json", "application/json", JSON.stringify(mapExport(vit, state)));
    }),
    button("export-csv", "CSV", "the patch scores of the map shown, one row per patch", () => {
      const m = mapExport(vit, state), lines = ["row,col,patch,score"];
      m.scores.forEach((row, r) => row.forEach((v, c) => lines.push([r, c, r * m.cols + c, v].join(","))));
      downloadBlob(stem() + ".csv", "text/csv", lines.join("\n") + "\n");
    }),
    button("export-png", "map PNG", "the image under its map, as drawn", () => {
      download(stem() + ".png", document.getElementById("main").toDataURL("image/png"));
    })]));
}
