// The views of the image page (explorer_image_page.js): each takes the decoded data and the shared
// state { image, layer, head, mode, patch, opacity }, appends its part of the page, and has a redraw method.

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
  const opacity = el("input", { type: "range", id: "opacity", min: "0", max: "1", step: "0.05",
                                value: String(state.opacity) });
  opacity.addEventListener("input", () => { state.opacity = Number(opacity.value); redraw(); });
  parent.append(el("div", { class: "controls", id: "controls" }, [
    el("label", {}, ["Layer ", layerSelect]), el("label", {}, ["Head ", headSelect]),
    el("span", {}, radios.map((r, i) => el("label", {}, [r, modes[i][1]]))),
    el("label", {}, ["map opacity ", opacity])]));
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
  // The chosen image, large, beside the same image under its heatmap; a click on a patch shows that patch's
  // attention (a second click goes back to the class token's), hovering one gives its weight. Beside them:
  // the labels, what the map shows and leaves out, and the colour bar.
  const SIZE = 384, { rows, cols } = vit;
  const main = el("canvas", { class: "main", id: "main", width: String(SIZE), height: String(SIZE) });
  const original = el("canvas", { class: "main original", id: "original", width: String(SIZE), height: String(SIZE) });
  const labels = el("div", { class: "labels", id: "labels" });
  const what = el("p", { class: "hint", id: "what" });
  const excluded = el("p", { class: "hint", id: "excluded" });
  const readout = el("p", { class: "readout", id: "map-readout", text: "Hover the map for a patch's weight." });
  const bar = colorBar("map-colorbar");
  const patchAt = (e) => {
    const rect = main.getBoundingClientRect();
    const c = Math.min(cols - 1, Math.floor((e.clientX - rect.left) / rect.width * cols));
    const r = Math.min(rows - 1, Math.floor((e.clientY - rect.top) / rect.height * rows));
    return r * cols + c;
  };
  main.addEventListener("click", (e) => {
    const p = patchAt(e);
    if (state.mode === "patch" && state.patch === p) { state.mode = "cls"; state.patch = null; }
    else { state.mode = "patch"; state.patch = p; }
    redraw();
  });
  main.addEventListener("mousemove", (e) => {
    const p = patchAt(e), w = scores(vit, state, vit.images[state.image], state.layer, state.head)[p];
    readout.textContent = "patch " + p + " (row " + Math.floor(p / cols) + ", column " + (p % cols) + "): " +
      w.toFixed(4);
    readout.dataset.patch = String(p); readout.dataset.weight = String(w);
  });
  parent.append(el("div", { class: "vit" }, [
    el("figure", {}, [original, el("figcaption", { text: "the image" })]),
    el("figure", {}, [main, el("figcaption", { text: "its attention map" })]),
    el("div", { class: "vit-side" }, [labels, what, excluded, bar.node, readout])]));

  return {
    redraw() {
      const im = vit.images[state.image], top = mapScale(vit, state, im);
      const octx = original.getContext("2d");
      octx.imageSmoothingEnabled = false;
      octx.drawImage(im.img, 0, 0, SIZE, SIZE);
      drawHeatmap(main, vit, state, im, state.layer, state.head, top);
      bar.set(0, top, state.mode === "rollout" || state.mode === "mean" ? "one scale: 0 to this map's largest patch"
        : "one scale for this image's maps in every layer and head (below too): 0 to the largest patch weight");
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
      excluded.textContent = state.mode === "rollout" || state.mode === "mean"
        ? "Left out of the map: the class token's attention to itself (key 0 is not a patch)."
        : "Left out of the map: " + (state.mode === "patch" ? "this patch's attention to the class token"
          : "the class token's attention to itself") + ", " + pct(classShare(vit, state, im)) +
          " of its attention (key 0 is not a patch); the patches show their own weights.";
    },
  };
}

function imageModelView(parent, vit, state, choose) {
  // The same query's heatmap in every layer and head (and the heads' mean), on the main map's scale;
  // a click chooses one. Below: the per-head statistics of the chosen image.
  parent.append(el("h2", { text: "Model view" }),
    el("p", { class: "hint", text: "The same query's attention in every layer and head, on one colour scale; " +
      "click one to choose it." }));
  const bar = colorBar("mv-colorbar");
  parent.append(bar.node);
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
  parent.append(el("h2", { text: "Heads at a glance" }), el("p", { class: "hint", text: "Per head, for the image " +
    "chosen, means over the patches' queries: the entropy of a query's weights in bits, the mean distance to the " +
    "patches it attends to, in patches (the class token counts as 0), and the share of its attention on the " +
    "class token. Click a column to sort by it, a row to choose that head." }));
  const table = statsTable(parent, [
    { key: "entropy", label: "entropy (bits)", title: "spread of a query's attention: 0 = all on one key" },
    { key: "distance", label: "mean distance", title: "how far a patch looks, in patches" },
    { key: "first", label: "to class token", title: "share of the attention on the class token" }], choose);
  let statsFor = -1;
  return {
    redraw() {
      const im = vit.images[state.image], top = mapScale(vit, state, im);
      bar.set(0, top, "the scale of the map above");
      for (const [cell, canvas, l, h] of cells) {
        drawHeatmap(canvas, vit, state, im, l, h, top);
        cell.classList.toggle("selected", state.mode !== "rollout" && state.mode !== "mean" &&
          l === state.layer && h === state.head);
      }
      if (statsFor !== state.image) {
        statsFor = state.image;
        const rows = [], { T, H } = vit;
        for (let l = 0; l < vit.L; l++) {
          for (let h = 0; h < H; h++) {
            const at = (i, j) => im.A.values[((l * H + h) * T + i) * T + j];
            rows.push(Object.assign({ l: l, h: h, layer: vit.layers[l], head: vit.heads[h] },
              headStatistics(at, T, { grid: [vit.rows, vit.cols] })));
          }
        }
        table.show(rows);
        api.headStats = rows;
      }
    },
  };
}
