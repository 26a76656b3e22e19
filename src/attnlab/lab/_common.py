"""What every lab experiment shares: the ``--out`` option, writing the PNG and JSON, fitting slopes."""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, and no backend surprises on servers

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

__all__ = ["add_out_argument", "write_results", "loglog_slope", "plt", "machine"]


def add_out_argument(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument("--out", type=Path, default=Path("runs") / "lab" / name,
                   help=f"directory for {name}.png and {name}.json (default runs/lab/{name})")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def write_results(
    out: Path, name: str, fig: Any, *, config: dict, results: dict, headline: dict, started: float
) -> tuple[Path, Path]:
    """Save ``fig`` as ``out/name.png`` and the numbers as ``out/name.json``; print both paths."""
    out.mkdir(parents=True, exist_ok=True)
    png, js = out / f"{name}.png", out / f"{name}.json"
    fig.savefig(png, dpi=110, bbox_inches="tight")
    plt.close(fig)
    doc = {"experiment": name, "config": config, "headline": headline, "results": results,
           "machine": machine(), "seconds": round(time.perf_counter() - started, 3)}
    js.write_text(json.dumps(_jsonable(doc), indent=2, allow_nan=False) + "\n")
    for key, value in headline.items():
        print(f"  {key}: {_fmt(value)}")
    print(f"wrote {png} and {js}")
    return png, js


def loglog_slope(xs, ys) -> float:
    """Least-squares slope of log(y) against log(x): the exponent p of y ~ c x^p."""
    lx, ly = np.log(np.asarray(xs, dtype=float)), np.log(np.asarray(ys, dtype=float))
    return float(np.polyfit(lx, ly, 1)[0])


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _jsonable(v: Any) -> Any:
    """Plain JSON types; non-finite floats become None (JSON has no NaN/inf)."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (np.floating, float)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, torch.Tensor):
        return _jsonable(v.tolist())
    return v
