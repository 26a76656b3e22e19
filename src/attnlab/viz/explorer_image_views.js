// The views of the image page (explorer_image_page.js): each takes the decoded data and the shared
// state { image, layer, head, mode, patch }, appends its part of the page, and has a redraw method.

function imageControls(parent, vit, state, choose, redraw) {
  // The layer, the head, and what to show: the class token's attention, rollout or the mean.
  const layerSelect = select("layer", vit.layers.map((l, i) => [i, "layer " + l]), state.layer,
    (v) => choose(v, state.head));
  const headSelect = select("head", [[-1, "mean of heads"]].concat(vit.heads.map((h, i) => [i, "head " + h])),
    state.head, (v) => choose(state.layer, v));
  const modes = [["cls", "class token's attention"], ["rollout", "attention rollout (all layers)"],
                 ["mean", "mean over all layers and heads"]];
  const radios = modes.map(([value, label]) => {
    const r = el("input", { type: "radio", name: "mode", value: value, id: "mode-" + value });
    r.addEventListener("change", () => { state.mode = value; state.patch = null; redraw(); });
    return r;
  });
  parent.append(el("div", { class: "controls", id: "controls" }, [
    el("label", {}, ["Layer ", layerSelect]), el("label", {}, ["Head ", headSelect]),
    el("span", {}, radios.map((r, i) => el("label", {}, [r, modes[i][1]])))]));
  function sync() {  // the model view and the heatmap's clicks change them too: show the state's
    layerSelect.value = String(state.layer); headSelect.value = String(state.head);
    for (const r of radios) r.checked = r.value === state.mode;  // none when a patch is chosen
  }
  sync();
  return { redraw: sync };
}

function imagePicker(parent, vit, state, redraw) {
  // A thumbnail per image; a click explores that image.
  parent.append(el("p", { class: "hint", text: "Click an image below to explore it. Click a patch to see that " +
    "patch's attention instead of the class token's; click it again to go back. Rollout and the mean use every " +
    "layer (heads averaged) and ignore the layer and head chosen." }));
  const thumbs = el("div", { class: "thumbs", id: "thumbs" }, vit.images.map((im, i) => {
    const t = el("img", { src: im.png, alt: im.name, title: im.name, "data-i": String(i) });
    t.addEventListener("click", () => { state.image = i; redraw(); });
    return t;
  }));
  parent.append(thumbs);
  return {
    redraw() { thumbs.querySelectorAll("img").forEach((t, i) => t.classList.toggle("selected", i === state.image)); },
  };
}

function imageView(parent, vit, state, redraw) {
  // The chosen image, large, under its heatmap; a click on a patch shows that patch's attention
  // (a second click goes back to the class token's). Beside it: its labels and what the map shows.
  const SIZE = 384, { rows, cols } = vit;
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
    redraw();
  });
  parent.append(el("div", { class: "vit" }, [main, el("div", {}, [labels, what,
    el("p", {}, ["low ", el("span", { class: "legend" }, []), " high (from the smallest to the largest patch)"])])]));

  return {
    redraw() {
      const im = vit.images[state.image];
      drawHeatmap(main, vit, state, im, state.layer, state.head);
      labels.textContent = "";
      const right = im.true === null ? null : im.true === im.pred;
      labels.append(el("div", { text: im.name }),
        el("div", { text: "true: " + (im.true === null ? "unknown" : im.true) }),
        el("div", { class: right === null ? "" : (right ? "right" : "wrong"),
                    text: "predicted: " + im.pred + " (p = " + im.probability.toFixed(3) + ")" }));
      const where = "layer " + vit.layers[state.layer] + ", " +
        (state.head < 0 ? "mean of heads" : "head " + vit.heads[state.head]);
      what.textContent = state.mode === "rollout" ? "Attention rollout from the class token, through all layers." :
        state.mode === "mean" ? "The class token's attention, mean over all layers and heads." :
        state.mode === "patch" ? "Attention of patch " + state.patch + " (row " + Math.floor(state.patch / cols) +
          ", column " + (state.patch % cols) + "), " + where + "." :
        "The class token's attention, " + where + ".";
    },
  };
}

function imageModelView(parent, vit, state, choose) {
  // The same query's heatmap in every layer and head (and the heads' mean); a click chooses one.
  parent.append(el("h2", { text: "Model view" }),
    el("p", { class: "hint", text: "The same query's attention in every layer and head; click one to choose it." }));
  const grid = el("div", { class: "modelview", id: "modelview",
                           style: "grid-template-columns: auto repeat(" + (vit.H + 1) + ", 92px)" });
  const cells = [];
  for (let l = 0; l < vit.L; l++) {
    grid.append(el("div", { class: "rowlabel", text: "layer " + vit.layers[l] }));
    for (let h = -1; h < vit.H; h++) {
      const canvas = el("canvas", { width: "84", height: "84" });
      const cell = el("div", { class: "cell", "data-layer": String(l), "data-head": String(h),
                               onclick: () => choose(l, h) }, [canvas, h < 0 ? "mean" : "head " + vit.heads[h]]);
      cells.push([cell, canvas, l, h]);
      grid.append(cell);
    }
  }
  parent.append(grid);
  return {
    redraw() {
      const im = vit.images[state.image];
      for (const [cell, canvas, l, h] of cells) {
        drawHeatmap(canvas, vit, state, im, l, h);
        cell.classList.toggle("selected", state.mode !== "rollout" && state.mode !== "mean" &&
          l === state.layer && h === state.head);
      }
    },
  };
}
