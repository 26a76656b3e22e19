// The attention explorer's shared helpers: decoding the weights, building DOM and SVG nodes, colours.
// explorer_page.py concatenates the explorer_*.js parts and explorer.js, in the order of its
// _SCRIPT_PARTS, into one strict-mode function inside the page's one inline script element: a part's
// top-level names are seen by the others (so each name is defined in one part only), and only
// window.explorer reaches the page's globals.
// No libraries and no network: plain DOM, SVG and canvas, so the page works offline as one file.
const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#e8590c", "#1c7ed6", "#2f9e44", "#ae3ec9", "#f08c00", "#0c8599", "#c2255c", "#5c940d",
                 "#364fc7", "#a61e4d", "#087f5b", "#862e9c", "#e67700", "#1864ab", "#2b8a3e", "#9c36b5"];
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

const TURBO = [[48, 18, 59], [70, 134, 251], [26, 228, 182], [162, 252, 60], [250, 186, 57], [228, 70, 10],
               [122, 4, 3]];
function turbo(t) {
  // A perceptual rainbow (an approximation of Google's Turbo): 0 dark blue -> 1 dark red.
  const x = Math.min(Math.max(t, 0), 1) * (TURBO.length - 1);
  const i = Math.min(Math.floor(x), TURBO.length - 2), f = x - i;
  return TURBO[i].map((c, k) => Math.round(c + f * (TURBO[i + 1][k] - c)));
}

function pct(p) { return (100 * p).toFixed(1) + "%"; }

function select(id, options, value, onchange) {
  const s = el("select", { id: id, onchange: () => onchange(Number(s.value)) },
    options.map(([v, label]) => el("option", { value: String(v), text: label })));
  s.value = String(value);
  return s;
}
