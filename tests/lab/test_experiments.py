"""Every lab experiment runs at a tiny size and writes a valid PNG, with no text drawn over other
text, and a JSON that makes sense; the report renders the experiments' descriptions as HTML."""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import math
import statistics

import matplotlib.pyplot as plt
import pytest
from PIL import Image

from attnlab.lab import EXPERIMENTS
from attnlab.lab.lowrank import crossover

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _texts(fig) -> list:
    """The figure's title, and each plot's title, axis labels and tick labels that show."""
    out = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
        out += [ax.title, ax.xaxis.label, ax.yaxis.label]
        out += [t for t in ax.get_xticklabels(which="both") if x0 <= t.get_position()[0] <= x1]
        out += [t for t in ax.get_yticklabels(which="both") if y0 <= t.get_position()[1] <= y1]
    return [t for t in out if t.get_visible() and t.get_text().strip()]


def overlapping_texts(fig) -> list[tuple[str, str]]:
    """Pairs of texts whose boxes on the page overlap (by more than a pixel)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer).expanded(1, 1).padded(-1)) for t in _texts(fig)]
    return [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if ba.overlaps(bb)]


def _run(name: str, out, extra: list[str] | None = None) -> dict:
    mod = importlib.import_module(f"attnlab.lab.{name}")
    assert mod.HELP and callable(mod.add_arguments) and callable(mod.run)
    p = argparse.ArgumentParser()
    mod.add_arguments(p)
    args = p.parse_args(list(getattr(mod, "TINY_ARGS", [])) + (extra or []) + ["--out", str(out)])
    overlaps = []  # checked as the experiment closes its figure
    close = plt.close
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plt, "close", lambda fig=None: overlaps.append(overlapping_texts(fig)) or close(fig))
        assert mod.run(args) == 0
    assert overlaps == [[]]
    png = out / f"{name}.png"
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(png) as im:
        im.verify()
    with Image.open(png) as im:
        assert im.size[0] > 200 and im.size[1] > 200
    doc = json.loads((out / f"{name}.json").read_text())
    assert doc["experiment"] == name and doc["headline"] and doc["config"]
    return doc


def _finite(xs) -> bool:
    return all(isinstance(x, (int, float)) and math.isfinite(x) for x in xs)


def test_graph(tmp_path):
    doc = _run("graph", tmp_path)
    res = doc["results"]
    T = doc["config"]["steps"]
    for name in ("x", "z", "h", "o", "yhat", "J"):
        assert all(f"{name}_{t}" in res["nodes"] for t in range(1, T + 1))
    assert {"W_hx", "W_hh", "W_yh"} <= set(res["nodes"])
    assert len(res["gradient_paths_into_W_hh"]) == T * (T + 1) // 2
    assert all(p[0] == "J" and p[-1] == "W_hh" for p in res["gradient_paths_into_W_hh"])
    hot = {tuple(e) for e in res["gradient_edges_into_W_hh"]}
    assert ("W_hh", "z_1") in hot and ("h_1", "z_2") in hot
    assert ("W_hx", "z_1") not in hot and ("x_1", "z_1") not in hot and ("W_yh", "o_1") not in hot
    svg = (tmp_path / "graph.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg


def test_vanishing(tmp_path):
    doc = _run("vanishing", tmp_path)
    assert doc["headline"]["autograd_vs_closed_form_max_rel_diff"] < 1e-9
    for rho, entry in doc["results"]["curves"].items():
        vals = entry["identity"]["influence"]
        assert _finite(vals)
        assert abs(entry["identity"]["growth_per_step"] - float(rho)) < 0.1 * float(rho)
        assert (vals[-1] < vals[len(vals) // 2]) == (float(rho) < 1)


def rnn_flops(T: int, d: int) -> int:
    """An Elman RNN layer: per step h W_hh^T and x W_ih^T, two (1 x d)(d x d) products of 2 d^2
    FLOPs each (a multiply and an add per term; biases and tanh are not counted)."""
    return 4 * T * d * d


def attention_flops(T: int, d: int) -> int:
    """Self-attention: the fused q/k/v projection (2 T d * 3d) and W_O (2 T d * d) make 8 T d^2;
    the scores Q K^T and the weighted sum A V are 2 T^2 d each, whatever the number of heads."""
    return 8 * T * d * d + 4 * T * T * d


@pytest.mark.parametrize("T,d,heads", [(1, 8, 1), (7, 8, 2), (32, 16, 2), (100, 64, 4), (256, 32, 8)])
def test_count_flops_is_the_closed_form(T, d, heads):
    from attnlab.lab.complexity import count_flops

    assert count_flops(d, heads, T) == (rnn_flops(T, d), attention_flops(T, d))


def _slope(xs, ys) -> float:
    """Least-squares slope of log y on log x, by the textbook formula."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def test_complexity_flop_slopes(tmp_path):
    doc = _run("complexity", tmp_path)
    d, Ts = doc["config"]["dim"], [r["T"] for r in doc["results"]["rows"]]
    assert d == 16 and Ts == [32, 64, 128, 256]
    slopes = doc["results"]["slopes"]
    assert slopes["flops_rnn"] == pytest.approx(1.0, abs=1e-9)  # exactly linear in T
    # 8 T d^2 + 4 T^2 d: between 1 and 2, nearer 2 as T outgrows 2 d
    assert slopes["flops_attention"] == pytest.approx(_slope(Ts, [attention_flops(T, d) for T in Ts]), abs=1e-9)
    assert 1.5 < slopes["flops_attention"] < 2
    for r in doc["results"]["rows"]:
        assert r["sequential_steps"] == {"rnn": r["T"], "attention": 1}
        assert r["flops_rnn"] == rnn_flops(r["T"], d) and r["flops_attention"] == attention_flops(r["T"], d)
        assert _finite(r["seconds"].values()) and all(v > 0 for v in r["seconds"].values())
        assert all(v >= 0 for v in r["peak_mib"].values())
    # the explicit path materialises T x T weights: more memory than the fused kernel
    last_explicit = [r for r in doc["results"]["rows"] if "attention_explicit" in r["peak_mib"]][-1]
    assert last_explicit["peak_mib"]["attention_explicit"] > last_explicit["peak_mib"]["attention"]


def test_lowrank(tmp_path):
    doc = _run("lowrank", tmp_path)
    errs = doc["results"]["errors"]
    for inp in ("smooth", "random"):
        svd = errs[inp]["svd"]
        assert svd[-1] < 1e-10  # k = n: exact
        assert all(a >= b - 1e-12 for a, b in zip(svd, svd[1:]))
        assert errs[inp]["linformer_pool"][-1] < 1e-10  # k = n: segment means are the identity
    pool = errs["smooth"]["linformer_pool"]
    assert all(a > b for a, b in zip(pool, pool[1:]))
    timing = doc["results"]["timing"]
    assert _finite([r["full_s"] for r in timing] + [r["linformer_s"] for r in timing])
    # the reported crossover is the one its own timings give, and the headline rounds it
    cross = doc["results"]["crossover_n"]
    assert cross == crossover(timing)
    assert doc["headline"]["crossover_n"] == (None if cross is None else round(cross))


def test_lowrank_ticks_stay_apart_over_the_default_lengths(tmp_path):
    lengths = ["256", "512", "1024", "2048", "4096", "8192"]  # the default timing lengths, at batch 1
    doc = _run("lowrank", tmp_path, ["--lengths", *lengths, "--batch", "1"])  # _run checks the overlaps
    assert [r["n"] for r in doc["results"]["timing"]] == [int(n) for n in lengths]


def _rows(*times):
    """Timing rows at n = 100, 200, 400, ... from (full_s, linformer_s) pairs."""
    return [{"n": 100 * 2**i, "full_s": f, "linformer_s": lin} for i, (f, lin) in enumerate(times)]


def test_lowrank_crossover_branches():
    # never faster at the longest length: no crossover (even if it was faster somewhere before)
    assert crossover(_rows((1.0, 2.0), (2.0, 3.0))) is None
    assert crossover(_rows((2.0, 1.0), (2.0, 3.0))) is None
    # faster everywhere: the shortest length measured
    assert crossover(_rows((2.0, 1.0), (4.0, 1.0), (8.0, 1.0))) == 100.0
    # slower at n=100 (ratio 1/2), faster at n=200 (ratio 2): log ratio -ln 2 .. ln 2, zero half-way
    # in log n: sqrt(100 * 200)
    assert crossover(_rows((1.0, 2.0), (2.0, 1.0))) == pytest.approx(math.sqrt(100 * 200), rel=1e-12)
    # ratio 1/8 -> 2 (log2: -3 .. 1): the zero is 3/4 of the way from 200 to 400 in log n
    assert crossover(_rows((1.0, 2.0), (1.0, 8.0), (2.0, 1.0))) == pytest.approx(200 * 2**0.75, rel=1e-12)
    # faster, slower, then faster for good: the crossing that counts is the last one
    assert crossover(_rows((2.0, 1.0), (1.0, 2.0), (2.0, 1.0))) == pytest.approx(math.sqrt(200 * 400), rel=1e-12)
    # equal times are not faster: the zero is exactly at that length
    assert crossover(_rows((1.0, 1.0), (3.0, 1.0))) == pytest.approx(100.0, rel=1e-12)


def test_scaling(tmp_path):
    doc = _run("scaling", tmp_path)
    for rows in doc["results"]["dot"].values():
        for r in rows:
            assert abs(r["mean_z"]) < 5  # within 5 standard errors of d mu^2
            assert r["var_rel_err"] < 0.15
    soft = doc["results"]["softmax"]
    scaled = [r["scaled"]["entropy"] for r in soft]
    unscaled = [r["unscaled"]["entropy"] for r in soft]
    assert max(scaled) - min(scaled) < 0.3  # 1/sqrt(d) keeps the softmax's entropy put
    assert unscaled[-1] < unscaled[0] - 0.5 and unscaled[-1] < scaled[-1]
    assert soft[-1]["unscaled"]["max_weight"] > soft[-1]["scaled"]["max_weight"]


def test_generation(tmp_path):
    doc = _run("generation", tmp_path)
    assert doc["headline"]["greedy_outputs_identical"] is True
    m, repeats = doc["config"]["tokens"], doc["config"]["repeats"]
    for r in doc["results"]["rows"]:
        for mode in ("cache", "no_cache"):
            steps = r[f"{mode}_step_ms"]  # every decoding step timed on its own
            assert len(steps) == m * repeats and all(x > 0 for x in steps)
            assert r[f"{mode}_ms_per_token"] == pytest.approx(statistics.median(steps), rel=1e-12)
            lo, hi = r[f"{mode}_ms_per_token_p25_p75"]
            assert lo <= r[f"{mode}_ms_per_token"] <= hi
        assert r["speedup"] == pytest.approx(r["no_cache_ms_per_token"] / r["cache_ms_per_token"], rel=1e-12)


def test_clock_tokens_times_each_token_on_its_own():
    from attnlab.lab.generation import clock_tokens

    ticks = iter([10.0, 10.5, 10.75, 11.0, 13.0])
    assert clock_tokens("abcd", clock=lambda: next(ticks)) == [0.5, 0.25, 0.25, 2.0]


def test_time_length_times_every_step_of_both_modes_and_returns_the_greedy_tokens():
    import torch

    from attnlab.lab.generation import time_length
    from attnlab.models.gpt import DialogueGPT, GPTConfig, generate

    torch.manual_seed(0)
    model = DialogueGPT(GPTConfig(vocab_size=20, context=16, dim=8, num_heads=2, num_layers=1, mlp_dim=16,
                                  dropout=0.0)).eval()
    prefix, m, repeats = [5, 6, 7], 4, 2
    out, tokens = time_length(model, prefix, m, repeats)
    # per mode: one prompt time per timed run, and each of the m decoding steps after it on its own
    assert {k: (len(v["prompt"]), len(v["steps"])) for k, v in out.items()} == {"cache": (2, 8), "no_cache": (2, 8)}
    assert all(t > 0 for v in out.values() for times in v.values() for t in times)
    # the tokens are the greedy continuation (m + 1 ids), the same with and without the cache
    greedy = generate(model, prefix, m + 1, use_cache=False)
    assert tokens == {"cache": greedy, "no_cache": greedy} and len(greedy) == m + 1


def test_report(tmp_path):
    from attnlab.lab import report

    p = argparse.ArgumentParser()
    report.add_arguments(p)
    assert report.run(p.parse_args(["--tiny", "--only", "graph", "scaling", "--out", str(tmp_path)])) == 0
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "<html>" in page and "src='http" not in page
    summary = json.loads((tmp_path / "report.json").read_text())
    assert set(summary) == {"graph", "scaling"}


def test_report_renders_descriptions_as_html():
    from attnlab.lab.report import doc_html

    doc = """``attnlab lab demo``: why *this* matters, see :mod:`attnlab.lab.rnn`.

    A closed form::

        E[q.k] = d mu^2

    * first ``--flag`` item, and :class:`~attnlab.models.gpt.DialogueGPT`
      continued here;
    * second <item> with a*b

    2*3 stays as it is.
    """
    assert doc_html(doc).split("\n") == [
        "<p>Why <em>this</em> matters, see <code>attnlab.lab.rnn</code>.</p>",
        "<p>A closed form:</p>",
        "<pre>E[q.k] = d mu^2</pre>",
        "<ul><li>first <code>--flag</code> item, and <code>DialogueGPT</code> continued here;</li>"
        "<li>second &lt;item&gt; with a*b</li></ul>",
        "<p>2*3 stays as it is.</p>",
    ]


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if n != "report"])
def test_report_shows_no_docstring_markup(name):
    from attnlab.lab.report import doc_html

    page = doc_html(importlib.import_module(f"attnlab.lab.{name}").__doc__)
    for markup in ("``", ":mod:", ":class:", ":func:", ":data:", "::", f"attnlab lab {name}"):
        assert markup not in page


def test_log_axes_are_labelled_in_full_at_the_measured_values():
    from attnlab.lab._common import figure, label_log_x, label_log_y, plain_labels

    fig, axes = figure(figsize=(6, 4))
    ax = axes[0, 0]
    ax.loglog([64, 256, 1024, 4096, 16384], [2.6e-4, 3e-4, 4e-4, 5e-4, 6.4e-4])
    ax.set_ylim(2.5e-4, 6.5e-4)
    label_log_x(ax, [64, 256, 1024, 4096, 16384])
    label_log_y(ax)
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["64", "256", "1,024", "4,096", "16,384"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.0003", "0.0004", "0.0005", "0.0006"]
    assert all(not t.get_text() for t in ax.get_xticklabels(minor=True) + ax.get_yticklabels(minor=True))
    ax.set_ylim(3e4, 2e10)
    label_log_y(ax)
    assert list(ax.get_yticks()) == [1e5, 1e6, 1e7, 1e8, 1e9, 1e10]
    assert [plain_labels([5e5, 1e6])(v) for v in (5e5, 1e6)] == [r"$5\times10^{5}$", "$10^{6}$"]
    plt.close(fig)


def test_bad_sizes_are_clear_errors(tmp_path):
    from attnlab.errors import AttnlabError
    from attnlab.lab import graph, lowrank

    p = argparse.ArgumentParser()
    graph.add_arguments(p)
    with pytest.raises(AttnlabError, match="--steps"):
        graph.run(p.parse_args(["--steps", "9", "--out", str(tmp_path)]))
    p = argparse.ArgumentParser()
    lowrank.add_arguments(p)
    with pytest.raises(AttnlabError, match="--ks"):
        lowrank.run(p.parse_args(["--n", "8", "--ks", "16", "--out", str(tmp_path)]))
