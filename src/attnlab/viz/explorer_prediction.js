// Prediction panel of a classifier: the predicted label, the ten most likely labels, and the tokens
// shaded by the attention they received. Drawn once: nothing in it follows the state.
function predictionPanel(parent, text) {
  const p = text.prediction;
  parent.append(el("h2", { text: "Prediction" }));
  const line = el("p", { class: "prediction", id: "prediction" });
  line.append("Prediction: ", el("b", { text: p.label }), " (p = " + p.probability.toFixed(3) + ")");
  parent.append(line);
  const top = [...p.probabilities].sort((a, b) => b[1] - a[1]).slice(0, 10);
  parent.append(el("table", { class: "top" }, top.map(([label, q]) => el("tr", {}, [
    el("td", { text: label }), el("td", {}, [el("span", { class: "bar", style: "width:" + (q * 200) + "px" })]),
    el("td", { text: pct(q) })]))));
  parent.append(el("p", { class: "hint", text: p.received_what[0].toUpperCase() + p.received_what.slice(1) + "." }));
  const top1 = Math.max(...p.received, 1e-12);
  parent.append(el("div", { class: "tokens", id: "received" }, text.tokens.map((t, i) => el("span", {
    class: "tok", title: p.received[i].toFixed(4),
    style: "background: rgba(217, 72, 15, " + (p.received[i] / top1).toFixed(3) + ")", text: shown(t) }))));
  return { redraw() {} };
}
