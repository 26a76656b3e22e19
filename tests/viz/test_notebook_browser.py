"""``attnlab.explore``'s inline output in a real headless Chromium: the HTML a notebook front end
puts in a cell (``_repr_html_``), inside a host page standing in for the notebook. The framed
explorer draws (its ready flag is set inside the sandboxed frame), no console error is raised in
either document, nothing is requested from the network, and the frame's screenshot is not blank.

Needs Chromium and Playwright, as tests/viz/test_explorer_browser.py; skipped with the reason without them.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

import attnlab
from attnlab.data.tokenizer import MyTokenizer
from attnlab.models.gpt import GPTConfig, random_gpt

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]

# A notebook's own styles and scripts around the output: the frame must keep them out.
HOST = """<!doctype html><html><head><meta charset="utf-8"><title>a notebook</title>
<style>body { font: 30px serif; color: red } svg, canvas, div { background: yellow }</style></head>
<body><h1>Out [1]:</h1>{output}<script>window.notebookSaw = document.querySelectorAll("svg").length;</script>
</body></html>"""


def chromium() -> str | None:
    for path in (os.environ.get("ATTNLAB_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if path and Path(path).is_file():
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests skipped: the playwright package is not installed (pip install playwright)")
    path = chromium()
    if path is None:
        pytest.skip("browser tests skipped: no Chromium at /usr/bin/chromium or on PATH (apt-get install -y "
                    "chromium, or set ATTNLAB_CHROMIUM)")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
    except Exception as exc:  # any failure to start means no browser
        pw.stop()
        pytest.skip(f"browser tests skipped: Chromium at {path} did not start: {exc}")
    yield b
    b.close()
    pw.stop()


def test_the_inline_explorer_draws_in_its_isolated_frame(browser, tmp_path):
    tok = MyTokenizer.build(["to be or not to be", "that is the question"])
    model = random_gpt(GPTConfig(vocab_size=len(tok.vocab), context=16, dim=16, num_heads=2, num_layers=2,
                                 mlp_dim=32))
    view = attnlab.explore(model, prompt="to be", generate=4, tokenizer=tok)
    host = tmp_path / "notebook.html"
    host.write_text(HOST.replace("{output}", view._repr_html_()), encoding="utf-8")

    tab = browser.new_page(viewport={"width": 1200, "height": 1000})
    errors: list[str] = []
    outside: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        if r.request.url.startswith(("file:", "about:", "data:")):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    tab.route("**/*", route)
    tab.goto(host.as_uri())
    frame = tab.frame_locator("iframe")
    frame.locator("body[data-ready='1']").wait_for(state="attached", timeout=15000)
    assert frame.locator("svg").count() > 0, "the framed page drew nothing"
    assert tab.evaluate("window.notebookSaw") == 0  # the notebook's document holds none of the page's drawing
    assert not errors and not outside, (errors, outside)
    shot = Image.open(io.BytesIO(tab.locator("iframe").screenshot())).convert("L")
    assert len(set(shot.getdata())) > 10, "the frame's screenshot is blank"
    tab.close()
