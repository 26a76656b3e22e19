// The page of a text model ("lm", "classifier", or one attention of a "translation" model): the controls,
// the head view and the model view, and beside the head view the generation steps (a language model), the
// prediction (a classifier) or the decoding steps (a translation). Every view reads the decoded data
// (textData) and the one shared state, and has a redraw method.

function textData(data) {
  // The page's data with its weights decoded: at(layer, head, query, key) for L layers of H heads, T query
  // tokens (data.tokens) and S key tokens (data.keys: a translation's source pieces; else the same tokens).
  const A = decode(data.attention);
  const [L, H, T, S] = A.shape;
  return Object.assign({}, data, { L: L, H: H, T: T, S: S, keys: data.keys || data.tokens,
    at: (l, h, i, j) => A.values[((l * H + h) * T + i) * S + j] });
}

function pairAllows(text, state, i, j) {
  // A sentence pair's filter (state.pair: "all", or "AB" for queries in A and keys in B, ...): whether query i's
  // weight on key j is shown. Sentence A is token type 0 ([CLS] A [SEP]), B token type 1 (B [SEP]).
  if (!text.segments || !state.pair || state.pair === "all") return true;
  return text.segments[i] === (state.pair[0] === "A" ? 0 : 1) && text.segments[j] === (state.pair[1] === "A" ? 0 : 1);
}

function textPage(app, data, extra) {
  // extra (a translation page): { cross: the cross-attention's textData, for the decoding steps }
  const text = textData(data);
  const state = { layer: text.initial.layer, heads: new Set([text.initial.head ?? 0]), threshold: 0.02,
                  focus: null, pinned: null, hoverBlocked: false, rowScale: false, step: 1, pair: "all" };
  api.state = state;
  api.weight = text.at;
  api.text = text;
  const views = [];
  const redraw = () => { for (const v of views) v.redraw(); };
  followPointer(state);

  views.push(textControls(app, text, state, redraw));
  const left = el("div", { class: "left" }), side = el("div", { class: "side", id: "side" });
  app.append(el("div", { class: "split" }, [left, side]));
  if (text.kind === "translation") views.push(heatmapView(left, text, state));
  const head = headView(left, text, state);
  if (text.compare) views.push(compareView(app, text, state));  // --compare: B beside A, and A - B
  views.push(head, modelView(app, text, state, (l, h) => {  // a click on a matrix opens it in the head view
    state.layer = l; state.heads = new Set([h]); state.focus = null;
    state.hoverBlocked = true;  // the scroll below moves tokens under a pointer that did not move
    redraw();
    head.svg.parentNode.scrollIntoView({ behavior: "auto", block: "start" });
  }));
  exportButtons(document.getElementById("controls"), text, state);  // after the model view: its canvases
  if (text.kind === "translation") {
    views.push(translationSteps(side, text, extra.cross, state, redraw, (q) => {  // a step selects its query
      state.pinned = { side: "q", i: q };
      head.scrollTo(q);
    }));
  } else if (text.kind === "lm") {
    if (text.generation) {
      views.push(generationSteps(side, text, state, redraw, (q) => {  // a step selects its query in the head view
        state.pinned = { side: "q", i: q };
        head.scrollTo(q);
      }));
    }
  } else if (text.prediction) {
    views.push(predictionPanel(side, text));
  }
  redraw();
  document.body.dataset.ready = "1";
}

let pointerState = null;  // the state followPointer watches: a translation page's view switch makes a new one
function followPointer(state) {
  // Hovering is ignored while state.hoverBlocked, until the pointer itself moves: the browser sends a
  // hover to whatever a scroll brings under a still pointer, which is not the reader's choice.
  const listening = pointerState !== null;
  pointerState = state;
  if (listening) return;
  let x = null, y = null;
  const seen = (e) => {
    const state = pointerState;
    if (state.hoverBlocked && x !== null && Math.abs(e.clientX - x) + Math.abs(e.clientY - y) > 2) {
      state.hoverBlocked = false;
    }
    x = e.clientX; y = e.clientY;
  };
  document.addEventListener("mousemove", seen, true);
  document.addEventListener("mousedown", seen, true);
}

function textControls(parent, text, state, redraw) {
  // The layer, the heads and the threshold, shared by the head view, the model view and the generation steps.
  const layerSelect = select("layer", text.layers.map((l, i) => [i, "layer " + l]), state.layer, (v) => {
    state.layer = v; redraw();
  });
  const boxes = text.heads.map((h, i) => {
    const box = el("input", { type: "checkbox", class: "head", "data-head": String(i), id: "head-" + i });
    box.checked = state.heads.has(i);
    box.addEventListener("change", () => {
      if (box.checked) state.heads.add(i); else state.heads.delete(i);
      redraw();
    });
    return box;
  });
  const threshold = el("input", { type: "number", id: "threshold", min: "0.001", max: "1", step: "0.01",
                                  value: String(state.threshold), style: "width:5em" });
  threshold.addEventListener("input", () => {
    const v = Number(threshold.value);
    if (v > 0 && v <= 1) { state.threshold = v; redraw(); }
  });
  const allHeads = el("button", { type: "button", id: "all-heads", text: "all heads", onclick: () => {
    text.heads.forEach((_, i) => state.heads.add(i)); redraw();
  } });
  const controls = el("div", { class: "controls", id: "controls" }, [
    el("label", {}, ["Layer ", layerSelect]),
    el("span", {}, boxes.map((box, i) => el("label", { class: "head-box",
      style: "border-color:" + headColor(i) }, [box, "head " + text.heads[i]]))),
    allHeads, el("label", {}, ["hide weights below ", threshold]),
  ]);
  if (text.segments) {  // a sentence pair (BERT): bertviz's filters
    const filters = [["all", "all"], ["AB", "A \u2192 B"], ["BA", "B \u2192 A"], ["AA", "A \u2192 A"],
                     ["BB", "B \u2192 B"]];
    controls.append(el("label", { title: "sentence A: [CLS] A [SEP] (token type 0); B: B [SEP] (token type 1); " +
      "A \u2192 B shows the attention of A's tokens (queries) on B's (keys)" }, ["Sentences ",
      select("pair-filter", filters.map(([, label], i) => [i, label]), 0, (v) => {
        state.pair = filters[v][0]; redraw();
      })]));
  }
  parent.append(controls);
  return {
    redraw() {  // the model view and "all heads" change the layer and heads too: show the state's
      layerSelect.value = String(state.layer);
      boxes.forEach((box, i) => { box.checked = state.heads.has(i); });
    },
  };
}
