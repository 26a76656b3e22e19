// The page of an image model (a ViT): the controls, the image picker, the chosen image under its
// attention heatmap, and the model view of that heatmap in every layer and head. The views read the
// decoded data (imageData) and the one shared state; drawHeatmap is the drawing they share.

function imageData(data) {
  // The page's data with each image's weights decoded, (L, H, T, T) with T = 1 + rows * cols
  // (the class token first), and an <img> for its picture.
  const [rows, cols] = data.grid;
  const images = data.images.map((im) => Object.assign({}, im, { A: decode(im.attention), img: new Image() }));
  const [L, H] = images[0].A.shape;
  return { rows: rows, cols: cols, N: rows * cols, T: rows * cols + 1, L: L, H: H, layers: data.layers,
           heads: data.heads, images: images };
}

function imagePage(app, data) {
  const vit = imageData(data);
  const state = { image: 0, layer: data.initial.layer, head: data.initial.head ?? -1, mode: "cls", patch: null,
                  opacity: 0.6 };
  api.state = state;
  const views = [];
  const redraw = () => { for (const v of views) v.redraw(); };
  const choose = (l, h) => {  // a layer and head (-1: the mean of the heads), from the controls or the model view
    state.layer = l; state.head = h;
    if (state.mode !== "patch") state.mode = "cls";
    redraw();
  };
  views.push(imageControls(app, vit, state, choose, redraw), imagePicker(app, vit, state, redraw),
             imageView(app, vit, state, redraw), imageModelView(app, vit, state, choose));
  imageExportButtons(document.getElementById("controls"), vit, state);
  let waiting = vit.images.length;
  for (const im of vit.images) {
    im.img.onload = () => { if (--waiting === 0) { redraw(); document.body.dataset.ready = "1"; } };
    im.img.src = im.png;
  }
}

function drawHeatmap(canvas, vit, state, im, l, h, top) {
  // Image im under its patches' scores (layer l, head h; -1: the mean of the heads) in viridis from 0 to top,
  // the one scale of every map of the image (mapScale), at the opacity the reader set.
  const s = scores(vit, state, im, l, h);
  const ctx = canvas.getContext("2d"), size = canvas.width, { rows, cols, N } = vit;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(im.img, 0, 0, size, size);
  const heat = document.createElement("canvas");
  heat.width = cols; heat.height = rows;
  const hctx = heat.getContext("2d"), data = hctx.createImageData(cols, rows);
  const alpha = Math.round(255 * state.opacity);
  for (let p = 0; p < N; p++) {
    const [r, g, b] = viridis(s[p] / top);
    data.data.set([r, g, b, alpha], 4 * p);
  }
  hctx.putImageData(data, 0, 0);
  ctx.drawImage(heat, 0, 0, size, size);  // patches stay sharp squares: no smoothing hides where a patch ends
  if (state.mode === "patch") {
    const pr = Math.floor(state.patch / cols), pc = state.patch % cols;
    ctx.strokeStyle = "#ffffff"; ctx.lineWidth = Math.max(1, size / 128);
    ctx.strokeRect(pc * size / cols, pr * size / rows, size / cols, size / rows);
  }
}

function mapScale(vit, state, im) {
  // The top of the colour scale shared by every map of image im: the largest patch score in any layer
  // and head for the chosen query (rollout and the mean: their own largest).
  let top = 0;
  const layers = state.mode === "rollout" || state.mode === "mean" ? [0] : [...Array(vit.L).keys()];
  for (const l of layers) {
    for (let h = -1; h < vit.H; h++) for (const v of scores(vit, state, im, l, h)) top = Math.max(top, v);
  }
  return Math.max(top, 1e-12);
}

function classShare(vit, state, im) {
  // What the map leaves out: the chosen query's weight on the class token (layer and heads chosen).
  const { T, H } = vit, q = state.mode === "patch" ? 1 + state.patch : 0;
  const heads = state.head < 0 ? [...Array(H).keys()] : [state.head];
  let w = 0;
  for (const h of heads) w += im.A.values[((state.layer * H + h) * T + q) * T] / heads.length;
  return w;
}

function scores(vit, state, im, l, h) {
  // One value per patch: the query's attention (class token or a clicked patch), rollout or the mean.
  if (state.mode === "rollout") return im.rollout;
  if (state.mode === "mean") return im.mean;
  const { N, T, H } = vit;
  const q = state.mode === "patch" ? 1 + state.patch : 0;
  const out = new Float32Array(N);
  const heads = h < 0 ? [...Array(H).keys()] : [h];
  for (const hh of heads) {
    const base = ((l * H + hh) * T + q) * T;
    for (let p = 0; p < N; p++) out[p] += im.A.values[base + 1 + p] / heads.length;
  }
  return out;
}
