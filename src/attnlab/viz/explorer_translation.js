// A translation model's page (kind "translation"): the source and its translation, then one of the model's
// attentions (data.views: the decoder's cross-attention, target pieces x source pieces; the encoder's and the
// decoder's self-attention), chosen in a menu and drawn by the text page (textPage) with, for each, a labelled
// heatmap (heatmapView) and the decoding steps (translationSteps) beside the head view.
const VIEW_NAMES = {  // menu label, and what the queries and keys are
  cross: ["cross-attention: target \u2192 source", ["target", "source"]],
  encoder: ["encoder self-attention: source \u00d7 source", ["source query", "source key"]],
  decoder: ["decoder self-attention: target \u00d7 target (causal)", ["decoder query", "decoder key"]],
};

function translationPage(app, data) {
  const tr = data.translation;
  app.append(el("div", { class: "translation", id: "translation" }, [
    el("p", {}, ["Source: ", el("b", { id: "source-text", text: tr.source })]),
    el("p", {}, ["Translation: ", el("b", { id: "translation-text", text: tr.text }),
      " (" + tr.how + (tr.ended ? ")" : "; stopped at the length limit, before \u003c/s>)")]),
  ]));
  const names = Object.keys(data.views);
  const cross = textData(Object.assign({}, data, data.views.cross));
  const holder = el("div", { id: "attention-view" });
  const show = (name) => {
    const v = data.views[name];
    holder.textContent = "";
    api.view = name;
    textPage(holder, Object.assign({}, data, v, { view: name, names: VIEW_NAMES[name][1],
      initial: { layer: name === "encoder" ? v.layers.length - 1 : data.initial.layer, head: data.initial.head } }),
    { cross: cross });
  };
  app.append(el("div", { class: "controls" }, [
    el("label", {}, ["Attention ", select("view", names.map((n, i) => [i, VIEW_NAMES[n][0]]), names.indexOf(data.view),
      (i) => show(names[i]))]),
    el("span", { class: "hint", text: names.length > 1 ? "the cross-attention joins each target piece to the " +
      "source pieces; the encoder's and the decoder's self-attention each read one side"
      : "this model has one attention, the decoder's over the source" })]), holder);
  show(data.view);
}

function heatmapView(parent, text, state) {
  // The chosen layer as a labelled heatmap (row i: query i, column j: key j), the checked heads averaged, on one
  // scale for every heatmap of this attention: 0 to the largest weight of its matrices (the model view's scale).
  let top = 0;
  for (let l = 0; l < text.L; l++) for (let h = 0; h < text.H; h++) top = Math.max(top, matrixMax(text, l, h));
  top = Math.max(top, 1e-12);
  const names = text.names || ["query", "key"];
  parent.append(el("h2", { text: text.view === "cross" ? "Alignment: target \u00d7 source" : "Heatmap" }),
    el("p", { class: "hint", text: "Row i is " + names[0] + " piece i, column j " + names[1] + " piece j: the " +
      "layer chosen above, the heads checked averaged." + (text.view === "cross" ? " Each row is the decoding step " +
      "that chose that target piece; its weights over the real source pieces sum to 1." : "") }));
  const bar = colorBar("hm-colorbar");
  bar.set(0, top, "one scale for every heatmap of this attention: 0 to the largest weight of its matrices");
  const readout = el("p", { class: "readout", id: "hm-readout", text: "Hover a cell for its weight." });
  const table = el("table", { class: "heatmap", id: "heatmap" });
  parent.append(bar.node, readout, el("div", { class: "heatmap-wrap" }, [table]));
  let drawn = null, rows = [];
  const cell = Math.max(14, Math.min(40, Math.floor(540 / Math.max(text.S, 1))));  // px: a short sentence gets big cells
  table.addEventListener("mouseover", (e) => {
    const td = e.target.closest("td");
    if (!td) return;
    const i = Number(td.dataset.q), j = Number(td.dataset.k), w = Number(td.dataset.w);
    readout.textContent = "layer " + text.layers[state.layer] + ", " + table.dataset.what + ": " + names[0] + " \u201c" +
      shown(text.tokens[i]) + "\u201d (" + i + ") \u2192 " + names[1] + " \u201c" + shown(text.keys[j]) + "\u201d (" + j +
      "): weight " + w.toFixed(4);
    Object.assign(readout.dataset, { q: String(i), k: String(j), weight: String(w) });
  });

  function draw(heads) {
    table.textContent = "";
    const header = el("tr", {}, [el("th", {})]);
    text.keys.forEach((k, j) => header.append(el("th", { class: "col", title: k + " (position " + j + ")" },
      [el("span", { text: shown(k) })])));
    table.append(header);
    rows = [];
    for (let i = 0; i < text.T; i++) {
      const row = el("tr", {}, [el("th", { class: "row", text: shown(text.tokens[i]),
                                           title: text.tokens[i] + " (position " + i + ")" })]);
      for (let j = 0; j < text.S; j++) {
        let w = 0;
        for (const h of heads) w += text.at(state.layer, h, i, j) / heads.length;
        const [r, g, b] = viridis(w / top);
        row.append(el("td", { "data-q": String(i), "data-k": String(j), "data-w": String(w),
                              style: "background: rgb(" + r + "," + g + "," + b + "); width: " + cell + "px; height: " +
                                Math.min(cell, 28) + "px" }));
      }
      table.append(row);
      rows.push(row);
    }
    Object.assign(table.dataset, { layer: String(state.layer), heads: heads.join(","),
      what: heads.length === 1 ? "head " + text.heads[heads[0]] : heads.length + " heads averaged" });
  }
  return {
    redraw() {
      const heads = [...state.heads].sort((a, b) => a - b), key = state.layer + ":" + heads.join(",");
      if (key !== drawn) { draw(heads); drawn = key; }  // a hover elsewhere redraws the page, not this table
      const f = state.focus || state.pinned;
      rows.forEach((row, i) => row.classList.toggle("pinned", !!f && f.side === "q" && f.i === i));
    },
  };
}

function translationSteps(parent, text, cross, state, redrawPage, follow) {
  // Each decoding step: the target piece it chose, the source pieces shaded by its cross-attention row (the
  // layer and heads chosen above; under the encoder's self-attention, the last layer's heads averaged), and
  // the model's most likely next pieces. A step selects its query in the head view (not the encoder's).
  const tr = text.translation, steps = tr.steps, n = steps.length;
  parent.append(el("h2", { text: "Decoding, step by step" }),
    el("p", { class: "hint", text: "Translated with " + tr.how + ". At each step the decoder, having read <s> and " +
      "the pieces chosen before, chose the framed target piece; the source pieces are shaded by its " +
      "cross-attention row, and the table gives the model's most likely pieces at that step." }));
  const label = stepper(parent, n, state, (step) => {
    if (text.view !== "encoder") follow(steps[step - 1].query);
    redrawPage();
  });
  const what = el("p", { class: "hint", id: "step-what" });
  const source = el("div", { class: "tokens", id: "step-source" }), target = el("div", { class: "tokens", id: "step-target" });
  const table = el("table", { class: "top", id: "gen-top" });
  parent.append(el("p", { class: "hint", text: "Source, shaded by the step's cross-attention:" }), source, what,
    el("p", { class: "hint", text: "Target so far:" }), target, table);

  function crossRow(q) {
    const own = text.view !== "encoder";  // the decoder's views share the cross-attention's layers and heads
    const l = own ? state.layer : cross.L - 1, heads = own ? [...state.heads] : [...Array(cross.H).keys()];
    const w = new Float32Array(cross.S);
    for (const h of heads) for (let j = 0; j < cross.S; j++) w[j] += cross.at(l, h, q, j) / heads.length;
    return { w: w, what: "cross-attention of layer " + cross.layers[l] + ", " +
      (own ? (heads.length === 1 ? "head " + cross.heads[heads[0]] : heads.length + " heads averaged")
        : "all heads averaged (the encoder's view is shown above)") };
  }

  function redraw() {
    const step = steps[state.step - 1], q = step.query, row = crossRow(q), top1 = Math.max(...row.w, 1e-12);
    label.textContent = "step " + state.step + " of " + n + ": chose \u201c" + shown(step.token) + "\u201d (p = " +
      step.probability.toFixed(3) + ")";
    what.textContent = row.what;
    source.textContent = "";
    cross.keys.forEach((tok, j) => source.append(el("span", { class: "tok", "data-w": String(row.w[j]),
      title: row.w[j].toFixed(4), style: "background: rgba(217, 72, 15, " + (row.w[j] / top1).toFixed(3) + ")",
      text: shown(tok) }), " "));
    target.textContent = "";
    for (let i = 0; i <= q; i++) {
      target.append(el("span", { class: "tok generated" + (i === q ? " next" : ""), text: shown(steps[i].token) }), " ");
    }
    table.textContent = "";
    const rows = step.top.some(([tok]) => tok === step.token) ? step.top : step.top.concat([[step.token, step.probability]]);
    for (const [tok, p] of rows) {
      table.append(el("tr", { class: tok === step.token ? "chosen" : "" }, [
        el("td", { text: shown(tok) }),
        el("td", {}, [el("span", { class: "bar", style: "width:" + (p * 200) + "px" })]),
        el("td", { text: pct(p) + (tok === step.token ? " \u2190 chosen" : "") })]));
    }
    api.stepRow = Array.from(row.w);
  }
  return { redraw: redraw };
}
