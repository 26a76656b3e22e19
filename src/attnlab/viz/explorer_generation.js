// Generation steps of a language model: a slider over the generated tokens (state.step); at each step
// the earlier tokens shaded by the attention of the position that chose the new token (state.layer,
// state.heads averaged), and the model's most likely next tokens. Its buttons redraw the whole page, and
// follow(query) lets the head view show the step's query.
function generationSteps(parent, text, state, redrawPage, follow) {
  const g = text.generation;
  const steps = g.steps, n = steps.length;
  parent.append(el("h2", { text: "Generation, step by step" }),
    el("p", { class: "hint", text: "Generated with " + g.how + ". At each step, the position that chose the new " +
      "token (framed) attended to the earlier tokens as shaded (the layer and heads chosen above, " +
      "heads averaged), and the head view shows its lines; the table gives the model's most likely next tokens." }));
  const label = stepper(parent, n, state, (step) => {
    follow(steps[step - 1].query);
    redrawPage();
  });
  const seq = el("div", { class: "tokens", id: "gen-tokens" });
  const table = el("table", { class: "top", id: "gen-top" });
  parent.append(seq, table);

  function redraw() {
    const step = steps[state.step - 1], q = step.query, w = averagedRow(text, state, q);
    const top1 = Math.max(...w.slice(0, q + 1), 1e-12);
    label.textContent = "step " + state.step + " of " + n + ": chose \u201c" + shown(step.token) +
      "\u201d (p = " + step.probability.toFixed(3) + ")";
    seq.textContent = "";
    for (let j = 0; j <= q + 1; j++) {
      const cls = "tok" + (j >= g.prompt_length ? " generated" : "") + (j === q ? " query" : "") +
        (j === q + 1 ? " next" : "");
      const alpha = j <= q ? w[j] / top1 : 0;
      seq.append(el("span", { class: cls, title: j <= q ? w[j].toFixed(4) : "the chosen token",
        style: "background: rgba(217, 72, 15, " + alpha.toFixed(3) + ")", text: shown(text.tokens[j]) }), " ");
    }
    table.textContent = "";
    const rows = step.top.some(([tok]) => tok === step.token) ? step.top
      : step.top.concat([[step.token, step.probability]]);  // the chosen token, if sampled from further down
    for (const [tok, p] of rows) {
      table.append(el("tr", { class: tok === step.token ? "chosen" : "" }, [
        el("td", { text: shown(tok) }),
        el("td", {}, [el("span", { class: "bar", style: "width:" + (p * 200) + "px" })]),
        el("td", { text: pct(p) + (tok === step.token ? " \u2190 chosen" : "") })]));
    }
  }
  return { redraw: redraw };
}

function averagedRow(text, state, i) {
  // The weights of query i over the keys, for the chosen layer, heads averaged.
  const heads = [...state.heads];
  const out = new Float32Array(text.T);
  if (!heads.length) return out;
  for (const h of heads) for (let j = 0; j < text.T; j++) out[j] += text.at(state.layer, h, i, j) / heads.length;
  return out;
}
