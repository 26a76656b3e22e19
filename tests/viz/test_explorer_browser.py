"""The explorer's pages in a real headless Chromium, driven by Playwright.

Every test fails on a JavaScript error or a console error, and on any request that leaves the
page (the page must work offline). Checked: the head view draws one line per (query, key) pair
whose weight passes the threshold, with the weight as its opacity; the layer and head selectors,
hovering and the model view change that drawing as they should; the generation steps and the
classifier's prediction show; clicking a ViT patch changes the heatmap; screenshots are not blank.
And what a reader reads off the page (issue 23): the colour bars span the data's range, a hovered line
or matrix cell shows the exported tensor's exact weight, the per-head statistics equal a NumPy
recomputation, the threshold says what it hides, and the step-through drives the head view.

Needs Chromium (Debian: ``apt-get install -y chromium``) and ``pip install playwright``
(``.ci/run`` installs both). Without them these tests are skipped, and the reason is printed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from PIL import Image

from attnlab.viz.explorer import Explorer, Request, Sampling, images_from_test_set, unpack
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
        if url.startswith(("file:", "data:", "blob:")):  # the page itself, its images and its downloads
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
            pixels = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).float()  # every channel value
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
        "compare": Explorer.load(text_runs / "transformer").answer(
            Request(text="a great film , not boring at all . i loved it", compare="a great film , boring and dull")),
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


# ---------------------------------------------------------------------- issue 23: honest scales, numbers, statistics
def vit_scores(data, image: int, layer: int, head: int, query: int = 0) -> torch.Tensor:
    """The patch scores a ViT map shows: the query's weights on the patches (head -1: the heads' mean)."""
    a = unpack(data["images"][image]["attention"])[layer]  # (H, T, T)
    return (a.mean(0) if head < 0 else a[head])[query, 1:]


def test_colour_bars_show_the_datas_range(browser, pages):
    for name in ("gpt", "text"):
        path, data = pages[name]
        page = Page(browser, path)
        bar = page.tab.locator("#mv-colorbar")
        assert bar.get_attribute("data-lo") == "0"
        assert float(bar.get_attribute("data-hi")) == float(unpack(data["attention"]).max())
        assert "0 to the largest weight on the page" in bar.inner_text()
        page.tab.select_option("#scale", "1")  # row scaling: a named option, and the bar says so
        assert page.tab.locator("#mv-colorbar").get_attribute("data-hi") == "row max"
        assert "row scaling" in page.tab.inner_text("#mv-colorbar")
        assert "turbo" not in path.read_text().lower()
        page.check_clean()
    path, data = pages["vit"]
    page = Page(browser, path)
    top = max(float(vit_scores(data, 0, layer, head).max())
              for layer in range(len(data["layers"])) for head in range(-1, len(data["heads"])))
    for bar in ("#map-colorbar", "#mv-colorbar"):
        assert page.tab.locator(bar).get_attribute("data-lo") == "0"
        assert float(page.tab.locator(bar).get_attribute("data-hi")) == pytest.approx(top, rel=1e-6)
    page.tab.check("#mode-rollout")
    rollout = max(data["images"][0]["rollout"])
    assert float(page.tab.locator("#map-colorbar").get_attribute("data-hi")) == pytest.approx(rollout, rel=1e-6)
    page.check_clean()


def test_hovering_a_line_shows_its_exact_weight(browser, pages):
    path, data = pages["gpt"]
    page = Page(browser, path)
    w = unpack(data["attention"])
    layer = data["initial"]["layer"]
    page.tab.click("#all-heads")
    boxes = page.tab.eval_on_selector_all("#lines line", "ls => ls.map(l => [l.x1.baseVal.value, l.y1.baseVal.value, "
                                          "l.x2.baseVal.value, l.y2.baseVal.value])")
    origin = page.tab.eval_on_selector("#headview", "s => { const r = s.getBoundingClientRect(); "
                                       "return [r.left, r.top]; }")
    seen = set()
    for x1, y1, x2, y2 in boxes[:: max(1, len(boxes) // 12)]:
        page.tab.mouse.move(origin[0] + x1 + 0.3 * (x2 - x1), origin[1] + y1 + 0.3 * (y2 - y1))
        readout = page.tab.locator("#line-readout")
        h, q, k = (int(readout.get_attribute(f"data-{a}")) for a in ("head", "q", "k"))
        weight = float(w[layer, h, q, k])
        assert float(readout.get_attribute("data-weight")) == weight  # the page's weight is the tensor's, exactly
        text = readout.inner_text()
        assert f"head {data['heads'][h]}" in text and f"layer {data['layers'][layer]}" in text
        assert f"({q}) \u2192 key" in text and f"({k}): weight {weight:.4f}" in text
        title = page.tab.eval_on_selector(f"#lines line[data-h='{h}'][data-q='{q}'][data-k='{k}']",
                                          "l => l.querySelector('title').textContent")
        assert title == text
        seen.add((h, q, k))
    assert len(seen) >= 3
    page.check_clean()


def test_hovering_a_model_view_cell_shows_its_weight(browser, pages):
    path, data = pages["text"]
    page = Page(browser, path)
    w = unpack(data["attention"])
    T = len(data["tokens"])
    cell = page.tab.locator(".modelview .cell[data-layer='1'][data-head='0'] canvas")
    cell.scroll_into_view_if_needed()
    box = cell.bounding_box()
    border = 2  # the canvas's CSS border
    side = box["width"] - 2 * border
    for q, k in ((0, 0), (T - 1, 2), (3, T - 1)):
        page.tab.mouse.move(box["x"] + border + (k + 0.5) * side / T, box["y"] + border + (q + 0.5) * side / T)
        readout = page.tab.locator("#cell-readout")
        assert (readout.get_attribute("data-q"), readout.get_attribute("data-k")) == (str(q), str(k))
        assert float(readout.get_attribute("data-weight")) == float(w[1, 0, q, k])
        assert f"weight {float(w[1, 0, q, k]):.4f}" in readout.inner_text()
    page.check_clean()


def test_hovering_a_token_reads_out_every_head(browser, pages):
    path, data = pages["gpt"]
    page = Page(browser, path)
    w = unpack(data["attention"])
    layer = data["initial"]["layer"]
    page.tab.hover("text.tok-q[data-i='5']")
    rows = page.tab.locator("#token-readout tr[data-head]")
    assert rows.count() == len(data["heads"])
    for h in range(len(data["heads"])):
        to, by = (rows.nth(h).locator("td").nth(n).locator(".pick").first for n in (1, 2))
        k = int(w[layer, h, 5].argmax())
        q = int(w[layer, h, :, 5].argmax())
        assert to.get_attribute("data-j") == str(k) and float(to.get_attribute("data-w")) == float(w[layer, h, 5, k])
        assert to.inner_text().strip() == f"{data['tokens'][k]} {float(w[layer, h, 5, k]):.3f}"
        assert by.get_attribute("data-j") == str(q) and float(by.get_attribute("data-w")) == float(w[layer, h, q, 5])
        assert by.inner_text().strip() == f"{data['tokens'][q]} {float(w[layer, h, q, 5]):.3f}"
    page.check_clean()


def head_statistics(w: torch.Tensor, *, causal: bool, tokens: list[str] | None = None,
                    grid: tuple[int, int] | None = None) -> dict[str, float]:
    """The page's per-head statistics recomputed in NumPy from one head's (T, T) weights."""
    import unicodedata

    import numpy as np

    a = w.double().numpy()
    T = a.shape[0]
    q0 = 1 if causal or grid else 0
    rows = a[q0:]
    i = np.arange(q0, T)[:, None]
    j = np.arange(T)[None, :]
    if grid:
        cols = grid[1]
        pr, pc = (i - 1) // cols, (i - 1) % cols
        kr, kc = (j - 1) // cols, (j - 1) % cols
        dist = np.where((i == 0) | (j == 0), 0.0, np.hypot(pr - kr, pc - kc))
    else:
        dist = np.abs(i - j).astype(float)
    logs = np.log2(np.where(rows > 0, rows, 1.0))
    out = {"entropy": float(np.mean(-(rows * logs).sum(1))), "distance": float(np.mean((rows * dist).sum(1))),
           "first": float(np.mean(rows[:, 0]))}
    if causal:
        out["previous"] = float(np.mean(a[np.arange(1, T), np.arange(0, T - 1)]))
    if tokens is not None:
        punct = np.array([bool(t.strip()) and all(unicodedata.category(c).startswith("P") for c in t.strip())
                          for t in tokens])
        out["punctuation"] = float(np.mean(rows[:, punct].sum(1)))
    return out


def table(page: Page) -> list[dict]:
    return page.tab.eval_on_selector_all("#head-stats tbody tr", "trs => trs.map(tr => Object.assign("
        "{l: +tr.dataset.layer, h: +tr.dataset.head}, Object.fromEntries([...tr.querySelectorAll('td[data-key]')]"
        ".map(td => [td.dataset.key, +td.dataset.value]))))")


@pytest.mark.parametrize("name", ["gpt", "text"])
def test_head_statistics_equal_a_numpy_recomputation(browser, pages, name):
    path, data = pages[name]
    page = Page(browser, path)
    w = unpack(data["attention"])
    rows = table(page)
    assert len(rows) == w.shape[0] * w.shape[1]
    keys = {"entropy", "distance", "first", "punctuation"} | ({"previous"} if data["causal"] else set())
    if name == "text":
        assert any(t in {",", "."} for t in data["tokens"])  # so the punctuation share is not trivially 0
    for row in rows:
        want = head_statistics(w[row["l"], row["h"]], causal=data["causal"], tokens=data["tokens"])
        assert set(want) == keys and {k for k in row if k not in ("l", "h")} == keys
        for key, value in want.items():
            assert row[key] == pytest.approx(value, abs=1e-9), (row["l"], row["h"], key)
    page.tab.click("#head-stats th[data-key='entropy']")  # sortable: largest first, then smallest first
    assert [r["entropy"] for r in table(page)] == sorted((r["entropy"] for r in rows), reverse=True)
    page.tab.click("#head-stats th[data-key='entropy']")
    assert [r["entropy"] for r in table(page)] == sorted(r["entropy"] for r in rows)
    page.tab.click("#head-stats tbody tr[data-layer='0'][data-head='1']")  # a row opens its head
    assert page.tab.input_value("#layer") == "0" and page.tab.is_checked("#head-1")
    page.check_clean()


def test_vit_head_statistics_equal_a_numpy_recomputation(browser, pages):
    path, data = pages["vit"]
    page = Page(browser, path)
    for image in (0, 2):
        page.tab.click(f".thumbs img[data-i='{image}']")
        a = unpack(data["images"][image]["attention"])
        rows = table(page)
        assert len(rows) == a.shape[0] * a.shape[1]
        for row in rows:
            want = head_statistics(a[row["l"], row["h"]], causal=False, grid=tuple(data["grid"]))
            assert set(want) == {k for k in row if k not in ("l", "h")}
            for key, value in want.items():
                assert row[key] == pytest.approx(value, abs=1e-9), (image, row["l"], row["h"], key)
    page.check_clean()


def test_the_threshold_says_how_much_weight_it_hides(browser, pages):
    path, data = pages["gpt"]
    page = Page(browser, path)
    w = unpack(data["attention"]).double()
    layer = data["initial"]["layer"]
    page.tab.fill("#threshold", "0.2")
    W = w[layer, 0]
    kept = float(W[(W > 0) & (W >= 0.2)].sum())
    share = (float(W.sum()) - kept) / float(W.sum())
    assert float(page.tab.get_attribute("#hidden", "data-hidden")) == pytest.approx(share, abs=1e-9)
    assert f"Lines under 0.2 hidden: {100 * share:.1f}% of the weight" in page.tab.inner_text("#hidden")
    page.check_clean()


def test_the_generation_step_drives_the_head_view(browser, pages):
    path, data = pages["gpt"]
    page = Page(browser, path)
    w = unpack(data["attention"])
    layer = data["initial"]["layer"]
    steps = data["generation"]["steps"]
    assert not page.tab.is_visible("#unpin")
    page.tab.click("#next")
    q = steps[1]["query"]
    assert page.lines() == {p for p in expected(w, layer, [0]) if p[1] == q}
    assert page.tab.locator("text.tok-q.active").get_attribute("data-i") == str(q)
    page.tab.click("#prev")
    assert page.lines() == {p for p in expected(w, layer, [0]) if p[1] == steps[0]["query"]}
    page.tab.click("#unpin")
    assert page.lines() == expected(w, layer, [0]) and not page.tab.is_visible("#unpin")
    page.check_clean()


def test_a_model_view_click_leaves_no_hover_behind(browser, pages):
    path, data = pages["gpt"]
    page = Page(browser, path)
    w = unpack(data["attention"])
    cell = page.tab.locator(".modelview .cell[data-layer='0'][data-head='1']")
    cell.scroll_into_view_if_needed()
    box = cell.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.tab.mouse.click(x, y)
    # What the browser sends when the scroll brings a token under the still pointer: ignored.
    for event in ("mouseover", "mouseenter", "mousemove"):
        page.tab.dispatch_event("text.tok-q[data-i='3']", event, {"clientX": x, "clientY": y})
    assert page.tab.evaluate("window.explorer.state.focus") is None
    assert page.lines() == expected(w, 0, [1])
    page.tab.hover("text.tok-q[data-i='3']")  # the pointer really moves: hovering works again
    assert page.lines() == {p for p in expected(w, 0, [1]) if p[1] == 3}
    page.check_clean()


def test_vit_map_opacity_original_and_what_is_left_out(browser, pages):
    path, data = pages["vit"]
    page = Page(browser, path)
    main, original = (page.tab.locator(c).bounding_box() for c in ("#main", "#original"))
    assert original["width"] >= main["width"] and original["height"] >= main["height"]
    before = canvas(page)
    page.tab.fill("#opacity", "0.2")
    assert page.tab.evaluate("window.explorer.state.opacity") == 0.2 and canvas(page) != before
    page.tab.fill("#opacity", "0")  # no map at all: the original image
    assert canvas(page) == page.tab.eval_on_selector("#original", "c => c.toDataURL()")
    a = unpack(data["images"][0]["attention"])[len(data["layers"]) - 1]
    share = float(a[:, 0, 0].mean())
    assert (f"the class token's attention to itself, {100 * share:.1f}% of its attention"
            in page.tab.inner_text("#excluded"))
    page.check_clean()


def cell_center(page: Page, selector: str, i: int, j: int, size: int) -> tuple[float, float]:
    """The page coordinates of row i, column j of a size x size canvas drawn inside a 2 px border."""
    page.tab.locator(selector).scroll_into_view_if_needed()
    box = page.tab.locator(selector).bounding_box()
    inner_w, inner_h = box["width"] - 4, box["height"] - 4
    return box["x"] + 2 + (j + 0.5) * inner_w / size, box["y"] + 2 + (i + 0.5) * inner_h / size


def test_compare_view_difference_is_a_minus_b(browser, pages, tmp_path):
    """--compare: the page's A - B equals the two exported tensors' difference over the aligned positions,
    the diverging colour bar spans the largest |A - B| shown, and a hovered cell reads out A, B and A - B."""
    path, data = pages["compare"]
    page = Page(browser, path)
    a, b = unpack(data["attention"]), unpack(data["compare"]["attention"])
    n = data["compare"]["aligned"]
    assert n == min(a.shape[-1], b.shape[-1]) and a.shape[-1] != b.shape[-1]
    want = (a[..., :n, :n] - b[..., :n, :n]).double()  # (L, H, n, n)
    L, H = want.shape[:2]
    got = page.tab.evaluate("""([L, H, n]) => { const c = window.explorer.compare, out = [];
        for (let l = 0; l < L; l++) for (let h = 0; h < H; h++) for (let i = 0; i < n; i++)
          for (let j = 0; j < n; j++) out.push(c.diff(l, h, i, j));
        return [c.n, out]; }""", [L, H, n])
    assert got[0] == n
    torch.testing.assert_close(torch.tensor(got[1], dtype=torch.float64).reshape(want.shape), want, atol=1e-7, rtol=0)
    torch.testing.assert_close(torch.tensor(data["compare"]["largest"], dtype=torch.float64),
                               want.abs().amax((-2, -1)), atol=1e-6, rtol=0)
    layer = data["initial"]["layer"]
    assert page.tab.locator("#compare-rows .compare-row").count() == 1  # the one head chosen
    assert float(page.tab.get_attribute("#diff-colorbar", "data-hi")) == pytest.approx(
        float(want[layer, 0].abs().max()), abs=1e-7)
    assert float(page.tab.get_attribute("#diff-colorbar", "data-lo")) == -float(
        page.tab.get_attribute("#diff-colorbar", "data-hi"))
    assert "position by position" in page.tab.text_content("#alignment")
    i, j = n - 1, 1
    page.tab.mouse.move(*cell_center(page, "#compare-rows .compare-row canvas >> nth=2", i, j, n))
    shown = page.tab.eval_on_selector("#diff-readout", "r => Object.assign({}, r.dataset)")
    assert (int(shown["q"]), int(shown["k"])) == (i, j)
    assert float(shown["diff"]) == pytest.approx(float(want[layer, 0, i, j]), abs=1e-7)
    assert float(shown["a"]) == float(a[layer, 0, i, j]) and float(shown["b"]) == float(b[layer, 0, i, j])
    page.tab.check("#head-1")  # the head selection is shared: a second row, and the bar spans both heads
    assert page.tab.locator("#compare-rows .compare-row").count() == 2
    assert float(page.tab.get_attribute("#diff-colorbar", "data-hi")) == pytest.approx(
        float(want[layer, :2].abs().max()), abs=1e-7)
    exported = json.loads(download(page, "#export-json").read_text())["compare"]  # B and A - B, as shown
    assert exported["aligned"] == n and exported["tokens"] == data["compare"]["tokens"]
    assert torch.equal(torch.tensor(exported["weights"], dtype=torch.float32), b[layer, :2])
    torch.testing.assert_close(torch.tensor(exported["difference"], dtype=torch.float64), want[layer, :2],
                               atol=1e-7, rtol=0)
    page.screenshot_is_drawn(tmp_path / "compare.png")
    page.check_clean()


def download(page: Page, button: str) -> Path:
    with page.tab.expect_download() as info:
        page.tab.click(button)
    return Path(info.value.path())


def test_exported_files_equal_the_pages_data(browser, pages):
    """The export buttons: JSON and CSV hold exactly the page's weights of the chosen layer and heads (tokens
    with commas quoted), the PNG is the chosen head's matrix, the SVG the head view's lines."""
    path, data = pages["gpt"]
    page = Page(browser, path)
    w = unpack(data["attention"])
    page.tab.select_option("#layer", "0")
    page.tab.check("#head-1")  # layer 0, heads 0 and 1
    exported = json.loads(download(page, "#export-json").read_text())
    assert exported["layer"] == data["layers"][0] and exported["heads"] == [data["heads"][0], data["heads"][1]]
    assert exported["tokens"] == data["tokens"] and "," in exported["tokens"]
    assert torch.equal(torch.tensor(exported["weights"], dtype=torch.float32), w[0, :2])
    with download(page, "#export-csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    T = len(data["tokens"])
    assert len(rows) == 2 * T * T
    for row in rows:
        h, q, k = int(row["head"]), int(row["query"]), int(row["key"])
        assert int(row["layer"]) == data["layers"][0] and row["query_token"] == data["tokens"][q]
        assert row["key_token"] == data["tokens"][k] and float(row["weight"]) == float(w[0, h, q, k])
    with Image.open(download(page, "#export-png")) as im:
        assert im.format == "PNG" and im.size == (T, T)
    svg = ET.parse(download(page, "#export-svg")).getroot()
    drawn = svg.findall(".//{http://www.w3.org/2000/svg}line")
    assert svg.tag == "{http://www.w3.org/2000/svg}svg" and len(drawn) == len(page.lines()) > 0
    page.check_clean()


def test_a_1024_token_page_loads_cleanly(browser, tmp_path):
    """Issue 23: the page works up to 1,024 tokens (a toy classifier with seq_len 1024, random weights, read to
    its own limit: no --max-tokens). The load time is printed as a measurement, not asserted."""
    import time

    from attnlab.models.configs import ToyModelConfig
    from attnlab.models.toy import ToyClassifier
    from attnlab.tasks import load_reader

    torch.manual_seed(0)
    model = ToyClassifier(ToyModelConfig(seq_len=1024, num_layers=1)).eval()
    ex = Explorer(model, {}, load_reader("toy", model, {}))
    data = ex.text(" ".join(str(1 + (i * 7) % 8) for i in range(1024)))
    assert len(data["tokens"]) == 1024 and unpack(data["attention"]).shape == (1, 2, 1024, 1024)
    path = write(data, tmp_path / "long.html")
    start = time.monotonic()
    page = Page(browser, path)
    print(f"\n1,024-token page ({path.stat().st_size / 1e6:.1f} MB): ready in {time.monotonic() - start:.2f} s")
    w = unpack(data["attention"])
    assert page.lines() == expected(w, 0, [0])
    page.tab.locator("text.tok-q[data-i='1000']").scroll_into_view_if_needed()
    page.tab.hover("text.tok-q[data-i='1000']")
    assert page.lines() == {p for p in expected(w, 0, [0]) if p[1] == 1000}
    assert page.tab.eval_on_selector_all("table.stats tbody tr", "r => r.length") == 2  # 1 layer x 2 heads
    page.check_clean()


def test_vit_export_equals_the_map_shown(browser, pages):
    """The ViT page's export: the map's patch scores (layer 0, head 1, the class token's query) as JSON and CSV
    equal the exported tensor's, and the PNG is the image under its map at the canvas's size."""
    path, data = pages["vit"]
    page = Page(browser, path)
    page.tab.select_option("#layer", "0")
    page.tab.select_option("#head", "1")
    want = vit_scores(data, 0, 0, 1)
    rows, cols = data["grid"]
    exported = json.loads(download(page, "#export-json").read_text())
    assert (exported["layer"], exported["head"], exported["mode"]) == (data["layers"][0], data["heads"][1], "cls")
    assert exported["image"] == data["images"][0]["name"] and (exported["rows"], exported["cols"]) == (rows, cols)
    assert torch.equal(torch.tensor(exported["scores"], dtype=torch.float32), want.reshape(rows, cols))
    with download(page, "#export-csv").open(newline="") as f:
        table = list(csv.DictReader(f))
    assert [int(r["patch"]) for r in table] == list(range(rows * cols))
    assert torch.equal(torch.tensor([float(r["score"]) for r in table], dtype=torch.float32), want)
    with Image.open(download(page, "#export-png")) as im:
        size = page.tab.eval_on_selector("#main", "c => c.width")
        assert im.format == "PNG" and im.size == (size, size)
    page.check_clean()


def test_a_1000_token_generation_page_and_its_step_time(browser, gpt_run, tmp_path):
    """A generation of 1,000 tokens past the context (a sliding window) makes a page that loads with no
    console error; a step of the step-through is measured and printed (issue 23 asks < 200 ms: a benchmark,
    not a timed assertion), and each step still selects its query."""
    import statistics
    import time

    data = Explorer.load(gpt_run).generation("to be", 1000)
    assert len(data["tokens"]) > 1000
    path = write(data, tmp_path / "long-gpt.html")
    start = time.monotonic()
    page = Page(browser, path)
    ready = time.monotonic() - start
    times = [page.tab.evaluate("() => { const t = performance.now(); document.getElementById('next').click(); "
                               "return performance.now() - t; }") for _ in range(10)]
    step = data["generation"]["steps"][10]
    assert page.tab.evaluate("() => window.explorer.state.pinned.i") == step["query"]
    print(f"\n{len(data['tokens'])}-token generation page ({path.stat().st_size / 1e6:.1f} MB): ready in "
          f"{ready:.2f} s; the script time of a step of the step-through (layout and paint not included): "
          f"median {statistics.median(times):.0f} ms, max {max(times):.0f} ms")
    page.check_clean()


# ---------------------------------------------------------------------- translation and sentence pairs (issues 21, 22)
@pytest.fixture(scope="module")
def more_pages(translate_runs, bert_dir, tmp_path_factory):
    """A translation page (a Transformer, greedy), an RNN translation page, a BERT sentence-pair page."""
    out = tmp_path_factory.mktemp("pages-more")
    data = {
        "translate": Explorer.load(translate_runs["transformer"]).answer(Request(text="I am cold.")),
        "rnn": Explorer.load(translate_runs["rnn"]).answer(Request(text="you are late.")),
        "pair": Explorer.load(bert_dir).answer(Request(text="the plot was thin", pair="the actors were great")),
    }
    return {name: (write(d, out / f"{name}.html"), d) for name, d in data.items()}


def test_translation_page_draws_its_three_attentions(browser, more_pages, tmp_path):
    path, data = more_pages["translate"]
    page = Page(browser, path)
    tab = page.tab
    layer = data["initial"]["layer"]
    views = {name: unpack(v["attention"]) for name, v in data["views"].items()}
    cross = views["cross"]
    # the cross-attention first: lines from each target piece (left) to the source pieces (right)
    assert tab.evaluate("explorer.view") == "cross"
    assert page.lines() == expected(cross, layer, [0]) and page.lines()
    left = tab.eval_on_selector_all("svg.headview text.tok-q", "ts => ts.map(t => t.textContent)")
    right = tab.eval_on_selector_all("svg.headview text.tok-k", "ts => ts.map(t => t.textContent)")
    assert len(left) == len(data["tokens"]) and len(right) == len(data["keys"]) and len(left) != len(right)
    # the alignment heatmap: rows = target pieces, columns = source pieces, the page's weights, one scale
    cells = tab.eval_on_selector_all("#heatmap td", "ts => ts.map(t => [+t.dataset.q, +t.dataset.k, +t.dataset.w])")
    assert len(cells) == cross.shape[-2] * cross.shape[-1]
    for q, k, w in cells:
        assert w == pytest.approx(float(cross[layer, 0, q, k]), abs=1e-6)
    hi = float(tab.get_attribute("#hm-colorbar", "data-hi"))
    assert hi == pytest.approx(float(cross.max()), abs=1e-6)
    assert float(tab.get_attribute("#mv-colorbar", "data-hi")) == pytest.approx(hi, abs=1e-6)
    tab.hover("#heatmap td[data-q='1'][data-k='0']")
    hovered = float(tab.get_attribute("#hm-readout", "data-weight"))
    assert hovered == pytest.approx(float(cross[layer, 0, 1, 0]), abs=1e-6)
    # two heads averaged
    tab.check("#head-1")
    for q, k, w in tab.eval_on_selector_all("#heatmap td", "ts => ts.map(t => [+t.dataset.q, +t.dataset.k, "
                                            "+t.dataset.w])"):
        assert w == pytest.approx(float(cross[layer, :2, q, k].mean()), abs=1e-6)
    tab.uncheck("#head-1")
    # the decoding steps: step 2's source shading is its cross-attention row
    tab.click("#next")
    assert tab.evaluate("explorer.stepRow") == pytest.approx(cross[layer, 0, 1].tolist(), abs=1e-6)
    assert page.lines() == {x for x in expected(cross, layer, [0]) if x[1] == 1}  # the step's query pinned
    page.screenshot_is_drawn(tmp_path / "translate.png")
    # the encoder's and the decoder's self-attention, each its own square view
    names = list(data["views"])
    assert names == ["cross", "encoder", "decoder"]
    for index in (1, 2, 0):  # back to the cross-attention last: a fresh view, no step pinned
        name = names[index]
        tab.select_option("#view", str(index))
        assert tab.evaluate("explorer.view") == name
        v = data["views"][name]
        want = expected(views[name], len(v["layers"]) - 1 if name == "encoder" else layer, [0])
        assert page.lines() == want and want
        if name == "decoder":
            assert all(k <= q for _, q, k in want)
        cells = tab.eval_on_selector_all("#heatmap td", "ts => ts.length")
        assert cells == len(v["tokens"]) * len(v["keys"])
    page.check_clean()


def test_rnn_translation_page_has_one_attention(browser, more_pages):
    path, data = more_pages["rnn"]
    page = Page(browser, path)
    assert page.tab.eval_on_selector_all("#view option", "os => os.length") == 1
    assert page.lines() == expected(unpack(data["attention"]), 0, [0])
    page.check_clean()


@pytest.mark.parametrize("index, pair", [(0, "all"), (1, "AB"), (2, "BA"), (3, "AA"), (4, "BB")])
def test_sentence_pair_filters(browser, more_pages, index, pair):
    path, data = more_pages["pair"]
    page = Page(browser, path)
    w, seg, layer = unpack(data["attention"]), data["segments"], data["initial"]["layer"]
    page.tab.select_option("#pair-filter", str(index))
    want = {(h, q, k) for h, q, k in expected(w, layer, [0])
            if pair == "all" or (seg[q] == "AB".index(pair[0]) and seg[k] == "AB".index(pair[1]))}
    assert page.lines() == want and want
    page.check_clean()
