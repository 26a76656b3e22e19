"""The explorer's pages in a real headless Chromium, driven by Playwright.

Every test fails on a JavaScript error or a console error, and on any request that leaves the
page (the page must work offline). Checked: the head view draws one line per (query, key) pair
whose weight passes the threshold, with the weight as its opacity; the layer and head selectors,
hovering and the model view change that drawing as they should; the generation steps and the
classifier's prediction show; clicking a ViT patch changes the heatmap; screenshots are not blank.

Needs Chromium (Debian: ``apt-get install -y chromium``) and ``pip install playwright``
(``.ci/run`` installs both). Without them these tests are skipped, and the reason is printed.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from attnlab.viz.explorer import Explorer, Sampling, images_from_test_set, unpack
from attnlab.viz.explorer_page import write

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]
THRESHOLD = 0.02  # the page's default "hide weights below"


def chromium() -> str | None:
    for path in (os.environ.get("ATTNLAB_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if path and Path(path).is_file():
            return path
    return None


def skip(request, reason: str) -> None:
    """Skip with the reason printed in the test run's output, not only in the skip summary."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\nbrowser tests skipped: {reason}")
    pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="module")
def browser(request):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip(request, "the playwright package is not installed (pip install playwright)")
    path = chromium()
    if path is None:
        skip(request, "no Chromium at /usr/bin/chromium or on PATH (apt-get install -y chromium, or set "
                      "ATTNLAB_CHROMIUM)")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
    except Exception as exc:  # the driver's own error types; any failure to start means no browser
        pw.stop()
        skip(request, f"Chromium at {path} did not start: {exc}")
    yield b
    b.close()
    pw.stop()


class Page:
    """A browser tab on one explorer page that records console errors and outside requests."""

    def __init__(self, browser, path: Path) -> None:
        self.tab = browser.new_page(viewport={"width": 1200, "height": 900})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.tab.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.tab.on("pageerror", lambda e: self.errors.append(str(e)))
        self.tab.route("**/*", self._route)
        self.tab.goto(path.as_uri())
        self.tab.wait_for_selector("body[data-ready='1']", timeout=15_000)

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            self.requests.append(url)
            route.abort()

    def lines(self) -> set[tuple[int, int, int]]:
        """(head, query, key) of every line the head view draws."""
        found = self.tab.eval_on_selector_all(
            "#lines line", "ls => ls.map(l => [+l.dataset.h, +l.dataset.q, +l.dataset.k])")
        assert len(found) == len({tuple(x) for x in found}), "a pair drawn twice"
        return {tuple(x) for x in found}

    def drawing(self) -> list[tuple[str, ...]]:
        """Every line as (head, query, key, opacity): what the reader sees."""
        return [tuple(x) for x in self.tab.eval_on_selector_all("#lines line", "ls => ls.map(l => "
                "[l.dataset.h, l.dataset.q, l.dataset.k, l.getAttribute('stroke-opacity')])")]

    def check_clean(self) -> None:
        assert not self.errors, f"JavaScript errors: {self.errors}"
        assert not self.requests, f"the page reached outside: {self.requests}"

    def screenshot_is_drawn(self, path: Path) -> None:
        self.tab.screenshot(path=str(path))
        with Image.open(path) as im:
            rgb = im.convert("RGB")
            assert rgb.size == (1200, 900)
            colors = rgb.getcolors(maxcolors=1 << 20) or []
            pixels = torch.tensor(list(rgb.getdata()), dtype=torch.float32)
        assert len(colors) > 50 and float(pixels.std()) > 10, "a blank screenshot"


def expected(weights: torch.Tensor, layer: int, heads: list[int], threshold: float = THRESHOLD) -> set:
    """The (head, query, key) pairs the head view must draw: weight > 0 and >= threshold."""
    out = set()
    for h in heads:
        w = weights[layer, h]
        for q, k in ((w > 0) & (w >= threshold)).nonzero().tolist():
            out.add((h, q, k))
    return out


@pytest.fixture(scope="module")
def pages(gpt_run, text_runs, vit_run, tmp_path_factory):
    """One page per kind: a language model with generation, a classifier, a ViT; and their data."""
    out = tmp_path_factory.mktemp("pages")
    run, data_dir = vit_run
    data = {
        "gpt": Explorer.load(gpt_run).generation("to be or not to be , that is", 6, Sampling(show_top=3)),
        "text": Explorer.load(text_runs / "transformer").text("a great film , not boring at all . i loved it"),
        "vit": Explorer.load(run).images(images_from_test_set(data_dir, [0, 1, 2], 32)),
        "hostile": Explorer.load(text_runs / "transformer").text('</script><img src=x onerror="alert(1)"> great'),
    }
    return {name: (write(d, out / f"{name}.html"), d) for name, d in data.items()}


def test_head_view_draws_one_line_per_pair_above_the_threshold(browser, pages, tmp_path):
    path, data = pages["gpt"]
    page = Page(browser, path)
    w = unpack(data["attention"])
    layer = data["initial"]["layer"]
    drawn = page.lines()
    assert drawn == expected(w, layer, [0]) and len(drawn) > 0
    opacities = page.tab.eval_on_selector_all(
        "#lines line", "ls => ls.map(l => [+l.dataset.q, +l.dataset.k, +l.getAttribute('stroke-opacity')])")
    for q, k, opacity in opacities:
        assert opacity == pytest.approx(float(w[layer, 0, q, k]), abs=1e-4)
    assert all(k <= q for _, q, k in drawn)  # causal: never a future key
    page.screenshot_is_drawn(tmp_path / "gpt.png")
    page.check_clean()


def test_layer_and_head_selectors_change_the_drawing(browser, pages):
    path, data = pages["gpt"]
    page = Page(browser, path)
    w = unpack(data["attention"])
    first = page.drawing()
    page.tab.select_option("#layer", "0")
    assert page.lines() == expected(w, 0, [0]) and page.drawing() != first
    layer0 = page.drawing()
    page.tab.uncheck("#head-0")
    page.tab.check("#head-1")
    assert page.lines() == expected(w, 0, [1]) and page.drawing() != layer0
    assert {h for h, *_ in page.drawing()} == {"1"}
    page.tab.click("#all-heads")
    assert page.lines() == expected(w, 0, [0, 1])
    page.tab.fill("#threshold", "0.2")
    assert page.lines() == expected(w, 0, [0, 1], 0.2)
    page.check_clean()


def test_hovering_a_token_isolates_its_lines(browser, pages):
    path, data = pages["gpt"]
    page = Page(browser, path)
    w = unpack(data["attention"])
    layer = data["initial"]["layer"]
    page.tab.hover("text.tok-q[data-i='5']")
    assert page.lines() == {p for p in expected(w, layer, [0]) if p[1] == 5}
    page.tab.hover("text.tok-k[data-i='1']")
    assert page.lines() == {p for p in expected(w, layer, [0]) if p[2] == 1}
    page.tab.mouse.move(1100, 10)
    assert page.lines() == expected(w, layer, [0])
    page.check_clean()


def test_model_view_click_opens_that_head(browser, pages):
    path, data = pages["gpt"]
    page = Page(browser, path)
    w = unpack(data["attention"])
    assert page.tab.locator(".modelview .cell").count() == 4  # 2 layers x 2 heads
    page.tab.click(".modelview .cell[data-layer='0'][data-head='1']")
    assert page.tab.input_value("#layer") == "0"
    assert not page.tab.is_checked("#head-0") and page.tab.is_checked("#head-1")
    assert page.lines() == expected(w, 0, [1])
    assert page.tab.locator(".modelview .cell.selected").count() == 1
    page.check_clean()


def test_generation_steps(browser, pages):
    path, data = pages["gpt"]
    page = Page(browser, path)
    steps = data["generation"]["steps"]
    assert "step 1 of 6" in page.tab.inner_text("#step-label")
    page.tab.click("#next")
    assert "step 2 of 6" in page.tab.inner_text("#step-label")
    tokens = page.tab.locator("#gen-tokens .tok")
    assert tokens.count() == steps[1]["query"] + 2  # the tokens so far and the chosen one
    assert page.tab.inner_text("#gen-tokens .tok.next") == steps[1]["token"]
    assert page.tab.locator("#gen-top tr").count() == 3  # greedy: the chosen token is the top one
    page.check_clean()


def test_classifier_page(browser, pages, tmp_path):
    path, data = pages["text"]
    page = Page(browser, path)
    w = unpack(data["attention"])
    assert page.lines() == expected(w, data["initial"]["layer"], [0])
    p = data["prediction"]
    assert f"Prediction: {p['label']} (p = {p['probability']:.3f})" in page.tab.inner_text("#prediction")
    assert page.tab.locator("#received .tok").count() == len(data["tokens"])
    page.screenshot_is_drawn(tmp_path / "text.png")
    page.check_clean()


def test_hostile_text_stays_text(browser, pages):
    path, data = pages["hostile"]
    page = Page(browser, path)
    assert page.tab.locator("img").count() == 0 and page.tab.locator("#received .tok").count() == len(data["tokens"])
    assert "<" in data["tokens"] and page.tab.locator("text.tok-q", has_text="<").count() >= 1
    page.check_clean()


def canvas(page: Page) -> str:
    return page.tab.eval_on_selector("#main", "c => c.toDataURL()")


def test_vit_patch_click_changes_the_heatmap(browser, pages, tmp_path):
    path, data = pages["vit"]
    page = Page(browser, path)
    cls_map = canvas(page)
    page.tab.click("#main", position={"x": 300, "y": 60})  # row 0, column 3 of the 4 x 4 grid
    assert page.tab.evaluate("window.explorer.state") == {
        "image": 0, "layer": len(data["layers"]) - 1, "head": -1, "mode": "patch", "patch": 3, "opacity": 0.6}
    patch_map = canvas(page)
    assert patch_map != cls_map
    assert "Attention of patch 3" in page.tab.inner_text("#what")
    page.tab.click("#main", position={"x": 300, "y": 60})  # the same patch again: back to the class token
    assert canvas(page) == cls_map
    page.tab.check("#mode-rollout")
    assert canvas(page) not in (cls_map, patch_map)
    page.tab.check("#mode-cls")
    page.tab.select_option("#head", "1")
    assert canvas(page) != cls_map
    page.tab.click(".thumbs img[data-i='2']")
    image = data["images"][2]
    assert f"predicted: {image['pred']}" in page.tab.inner_text("#labels")
    assert f"true: {image['true']}" in page.tab.inner_text("#labels")
    page.screenshot_is_drawn(tmp_path / "vit.png")
    page.check_clean()


def test_screenshot_png_is_a_png(browser, pages):
    page = Page(browser, pages["text"][0])
    raw = page.tab.screenshot()
    with Image.open(io.BytesIO(raw)) as im:
        assert im.format == "PNG"
    page.check_clean()
