"""Every lab experiment runs at a tiny size and writes a valid PNG and a JSON that makes sense."""

from __future__ import annotations

import argparse
import importlib
import json
import math

import pytest
from PIL import Image

from attnlab.lab.lowrank import crossover

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _run(name: str, out, extra: list[str] | None = None) -> dict:
    mod = importlib.import_module(f"attnlab.lab.{name}")
    assert mod.HELP and callable(mod.add_arguments) and callable(mod.run)
    p = argparse.ArgumentParser()
    mod.add_arguments(p)
    args = p.parse_args(list(getattr(mod, "TINY_ARGS", [])) + (extra or []) + ["--out", str(out)])
    assert mod.run(args) == 0
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
    for r in doc["results"]["rows"]:
        assert r["cache_ms_per_token"] > 0 and r["no_cache_ms_per_token"] > 0


def test_report(tmp_path):
    from attnlab.lab import report

    p = argparse.ArgumentParser()
    report.add_arguments(p)
    assert report.run(p.parse_args(["--tiny", "--only", "graph", "scaling", "--out", str(tmp_path)])) == 0
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "<html>" in page and "src='http" not in page
    summary = json.loads((tmp_path / "report.json").read_text())
    assert set(summary) == {"graph", "scaling"}


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
