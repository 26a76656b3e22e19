// The attention explorer's shared helpers: decoding the weights, building DOM and SVG nodes, colours.
// explorer_page.py concatenates the explorer_*.js parts and explorer.js, in the order of its
// _SCRIPT_PARTS, into one strict-mode function inside the page's one inline script element: a part's
// top-level names are seen by the others (so each name is defined in one part only), and only
// window.explorer reaches the page's globals.
// No libraries and no network: plain DOM, SVG and canvas, so the page works offline as one file.
const SVG_NS = "http://www.w3.org/2000/svg";
// Head colours: the Okabe-Ito palette (distinct under the common colour-vision deficiencies), yellow last;
// heads past the eighth repeat a colour with a dashed line (headDash).
const PALETTE = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442"];
function headColor(h) { return PALETTE[h % PALETTE.length]; }
function headDash(h) { return h >= PALETTE.length ? "5 3" : ""; }
const api = {};  // window.explorer: the data and the state, for the tests and the curious
window.explorer = api;

function decode(packed) {
  // uint16 little-endian in base64 -> Float32Array of weights (round(w * 65535) on the Python side)
  const bin = atob(packed.data);
  const values = new Float32Array(bin.length >> 1);
  for (let i = 0; i < values.length; i++) {
    values[i] = (bin.charCodeAt(2 * i) | (bin.charCodeAt(2 * i + 1) << 8)) / 65535;
  }
  return { shape: packed.shape, values: values };
}

function el(tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children || []) node.append(c);
  return node;
}

function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function shown(token) {
  // Whitespace tokens (character models) get a visible stand-in.
  if (token === "\n") return "\u23ce";
  if (token === " ") return "\u2423";
  if (token === "") return "\u2205";
  return token.length > 28 ? token.slice(0, 27) + "\u2026" : token;
}

// Viridis (matplotlib's perceptually uniform map), sampled at nine evenly spaced points: 0 dark purple -> 1 yellow.
const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142], [31, 158, 137],
                 [53, 183, 121], [110, 206, 88], [253, 231, 37]];
function viridis(t) {
  const x = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2), f = x - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
}
const VIRIDIS_CSS = "linear-gradient(to right, " +
  VIRIDIS.map((c, i) => "rgb(" + c.join(",") + ") " + (100 * i / (VIRIDIS.length - 1)) + "%").join(", ") + ")";

function colorBar(id) {
  // A labelled colour bar: set(lo, hi, what) shows the range a heatmap's colours stand for; the range is
  // also in data-lo and data-hi (the numbers themselves, for the tests and the curious).
  const lo = el("span", { class: "cb-lo" }), hi = el("span", { class: "cb-hi" }), what = el("span", { class: "hint" });
  const node = el("div", { class: "colorbar", id: id }, [
    lo, el("span", { class: "cb-ramp", style: "background: " + VIRIDIS_CSS }), hi, what]);
  return {
    node: node,
    set(a, b, text) {
      lo.textContent = typeof a === "number" ? a.toFixed(3) : a;
      hi.textContent = typeof b === "number" ? b.toFixed(3) : b;
      node.dataset.lo = String(a); node.dataset.hi = String(b);
      what.textContent = text;
    },
  };
}

// A slider with previous/next buttons over steps 1..n (state.step), appended to parent: each move sets
// state.step and calls onStep(step); returns the label beside it, for the caller to fill.
function stepper(parent, n, state, onStep) {
  const range = el("input", { type: "range", id: "step", min: "1", max: String(n), value: String(state.step) });
  const label = el("span", { id: "step-label" });
  const go = (s) => {
    state.step = Math.min(Math.max(s, 1), n); range.value = String(state.step);
    onStep(state.step);
  };
  range.addEventListener("input", () => go(Number(range.value)));
  parent.append(el("div", { class: "controls" }, [
    el("button", { type: "button", id: "prev", text: "\u25c0 previous", onclick: () => go(state.step - 1) }),
    range, el("button", { type: "button", id: "next", text: "next \u25b6", onclick: () => go(state.step + 1) }),
    label]));
  return label;
}

function pct(p) { return (100 * p).toFixed(1) + "%"; }

function select(id, options, value, onchange) {
  const s = el("select", { id: id, onchange: () => onchange(Number(s.value)) },
    options.map(([v, label]) => el("option", { value: String(v), text: label })));
  s.value = String(value);
  return s;
}
