"""Every lab experiment runs at a tiny size and writes a valid PNG and a JSON that makes sense."""

from __future__ import annotations

import argparse
import importlib
import json
import math

import pytest
from PIL import Image

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


def test_complexity_flop_slopes(tmp_path):
    doc = _run("complexity", tmp_path)
    slopes = doc["results"]["slopes"]
    assert 0.8 <= slopes["flops_rnn"] <= 1.3
    assert 1.6 <= slopes["flops_attention"] <= 2.3
    for r in doc["results"]["rows"]:
        assert r["sequential_steps"] == {"rnn": r["T"], "attention": 1}
        assert r["flops_attention"] > r["flops_rnn"] > 0
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
    cross = doc["results"]["crossover_n"]
    assert cross is None or cross > 0


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
