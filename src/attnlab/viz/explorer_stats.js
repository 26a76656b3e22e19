// Per-head statistics, computed here from the page's own weights, and the sortable table that shows them
// (the text and the image model views). Every statistic is a mean over the queries that have a choice:
// a language model's first token can only attend to itself and an image's class token is not a patch, so
// both leave out query 0 (statsQueries).

function isPunctuation(token) {
  const t = token.trim();
  return t.length > 0 && /^\p{P}+$/u.test(t);
}

function statsQueries(opts) { return opts.causal || opts.grid ? 1 : 0; }

function headStatistics(at, T, opts) {
  // at(i, j): the head's weight of query i on key j, T tokens. opts: { causal, grid: [rows, cols] for an
  // image (key 0 the class token, key 1 + r * cols + c the patch at row r, column c), punct: booleans }.
  // entropy in bits; distance in tokens (an image: in patches, the class token at distance 0);
  // first: the share of attention on key 0 (the first token, or the class token);
  // previous (causal only): on key i - 1; punctuation (text only): on the punctuation tokens.
  // opts.keys: S keys of another sequence (a translation's source pieces; T queries), no distance.
  const q0 = statsQueries(opts), n = Math.max(T - q0, 1), cols = opts.grid ? opts.grid[1] : 0;
  const S = opts.keys ?? T;
  const distance = opts.grid
    ? (i, j) => (i === 0 || j === 0 ? 0 : Math.hypot(Math.floor((i - 1) / cols) - Math.floor((j - 1) / cols),
                                                       (i - 1) % cols - (j - 1) % cols))
    : (i, j) => Math.abs(i - j);
  let entropy = 0, dist = 0, first = 0, previous = 0, punct = 0;
  for (let i = q0; i < T; i++) {
    for (let j = 0; j < S; j++) {
      const w = at(i, j);
      if (w <= 0) continue;
      entropy -= w * Math.log2(w);
      if (opts.keys === undefined) dist += w * distance(i, j);
      if (opts.punct && opts.punct[j]) punct += w;
    }
    first += at(i, 0);
    if (opts.causal && i > 0) previous += at(i, i - 1);
  }
  const out = { entropy: entropy / n, first: first / n };
  if (opts.keys === undefined) out.distance = dist / n;
  if (opts.causal) out.previous = previous / n;
  if (opts.punct) out.punctuation = punct / n;
  return out;
}

function statsTable(parent, columns, pick) {
  // A table of one row per (layer, head): columns [{ key, label, title }]; a click on a column's header
  // sorts by it (again: the other way), a click on a row picks that head. show(rows) fills it with rows
  // { l, h, layer, head, <key>: value }; each value cell keeps its number in data-value.
  const thead = el("tr", {}, [el("th", { text: "layer" }), el("th", { text: "head" })]);
  const body = el("tbody", {});
  const table = el("table", { class: "stats", id: "head-stats" }, [el("thead", {}, [thead]), body]);
  let rows = [], sortKey = null, descending = true;
  for (const c of columns) {
    thead.append(el("th", { class: "sortable", "data-key": c.key, title: c.title + " (click to sort)",
      text: c.label, onclick: () => {
        descending = sortKey === c.key ? !descending : true;
        sortKey = c.key;
        fill();
      } }));
  }
  parent.append(el("div", { class: "stats-wrap" }, [table]));

  function fill() {
    const sorted = sortKey === null ? rows
      : [...rows].sort((a, b) => (descending ? b[sortKey] - a[sortKey] : a[sortKey] - b[sortKey]));
    body.textContent = "";
    for (const r of sorted) {
      body.append(el("tr", { "data-layer": String(r.l), "data-head": String(r.h), onclick: () => pick(r.l, r.h) }, [
        el("td", { text: String(r.layer) }),
        el("td", {}, [el("span", { class: "swatch", style: "background:" + headColor(r.h) }), String(r.head)]),
        ...columns.map((c) => el("td", { "data-key": c.key, "data-value": String(r[c.key]),
                                         text: c.key === "entropy" || c.key === "distance"
                                           ? r[c.key].toFixed(2) : pct(r[c.key]) }))]));
    }
    table.querySelectorAll("th.sortable").forEach((th) => {
      th.dataset.sorted = th.dataset.key === sortKey ? (descending ? "down" : "up") : "";
    });
  }
  return { show(newRows) { rows = newRows; fill(); }, table: table };
}
