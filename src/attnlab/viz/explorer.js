// The attention explorer's page: draws the data written into #explorer-data (attnlab.viz.explorer)
// with the views of the explorer_*.js parts, which explorer_page.py puts before this one.
const DATA = JSON.parse(document.getElementById("explorer-data").textContent);
api.data = DATA;

function header(data) {
  document.getElementById("model").textContent = data.model + (data.checkpoint ? " \u2014 " + data.checkpoint : "");
  const notes = document.getElementById("notes");
  for (const n of data.notes || []) notes.append(el("li", { text: n }));
}

const app = document.getElementById("app");
app.textContent = "";
if (DATA === null) {  // the local server's page before any input: only its form
  document.body.dataset.ready = "1";
} else {
  header(DATA);
  if (DATA.kind === "image") imagePage(app, DATA);
  else if (DATA.kind === "translation") translationPage(app, DATA);
  else textPage(app, DATA);  // "lm" or "classifier"
}
