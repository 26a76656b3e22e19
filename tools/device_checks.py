"""The GPU measurements of issue 26, item 7, as one script that fits one device command.

Run it on a machine with a CUDA GPU from the repository root (the package need not be installed:
it runs ``attnlab.cli`` with ``src`` on the path)::

    python tools/device_checks.py --out "$OUT/gpu" --budget 480

It runs, most important first, each as its own ``attnlab`` process with a time limit, and
writes ``summary.md`` (and ``summary.json``) after every stage, so a command cut short still
leaves what was done. Beside them are each stage's log and each run's metrics; checkpoints and
the synthetic images stay in a temporary folder, removed at the end:

1. ``bench attention|gpt|vit|generate --device cuda`` (random weights; no data needed; with
   ``--nanogpt PATH`` to nanoGPT's ``model.py``, carried to the device, the decoding bench also
   times nanoGPT's ``generate``);
2. ``train gpt --preset char-gpu`` on the bundled Tiny Shakespeare: its validation loss,
   against nanoGPT's 1.4697 for the same recipe (capped by ``train.time_limit``, so that it
   always ends with a validation);
3. without ``--cifar``: ``train vit --preset cifar10-gpu``, without and with ``train.compile``,
   for images/s only, on random 32 x 32 PNGs made here;
4. with ``--cifar DIR`` (``cifar-10-batches-py`` or its parent) instead: the real
   ``cifar10-gpu`` run, seed 0, for its accuracy, minutes and images/s (``train.time_limit``
   300 s, the preset's aim being 90 % in 5 minutes), then a short compiled run on the same data
   for its images/s. ``DIR`` may still be being written when the script starts (the CIFAR-10
   JPEGs unpacked beside it): the stage waits up to ``--cifar-wait`` seconds for it.

With ``--cifar`` the two training runs come first (the figures the GPU presets are judged by),
then the benchmarks, then the compiled run. A stage's ``train.time_limit`` is lowered, when the
budget left is short, so that the run still stops, validates and scores itself before its process
limit; a training run with less than a minute of training left is skipped and says so.

``--rehearse`` runs every stage on the CPU at toy sizes (seconds): what the test suite does,
so the script stays runnable on the day a GPU is lent. A stage that fails or runs out of time
is recorded as such and the next one still runs; the exit code is 1 if any stage failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLI = "import sys; from attnlab.cli import main; sys.exit(main(sys.argv[1:]))"  # `attnlab`, uninstalled
NANOGPT_CHAR_GPU = 1.4697  # nanoGPT's val loss for the shakespeare_char recipe (its README)

# the rehearsal's toy sizes (--rehearse), and the synthetic-image runs' length on a GPU
TINY_GPT = ["--set", "train.max_steps=4", "--set", "model.dim=32", "--set", "model.num_heads=2",
            "--set", "model.num_layers=1", "--set", "model.mlp_dim=64", "--set", "model.context=32",
            "--set", "train.batch_size=4", "--set", "train.eval_every=2", "--set", "data.max_val_tokens=2000",
            "--set", "sample.num_tokens=5"]
TINY_VIT = ["--set", "train.max_steps=3", "--set", "model.dim=32", "--set", "model.num_layers=1",
            "--set", "model.num_heads=2", "--set", "model.head_dim=16", "--set", "model.mlp_dim=64",
            "--set", "model.stem_channels=8,16", "--set", "model.head_hidden=32", "--set", "train.batch_size=16",
            "--set", "data.eval_batch_size=64", "--set", "train.log_every=1"]
CHAR_GPU_CAP, CIFAR_GPU_CAP = 150, 300  # train.time_limit of the two real runs, in seconds
CHAR_GPU = ["train", "gpt", "--preset", "char-gpu"]  # the two GPU presets' runs, before their other arguments
CIFAR10_GPU = ["train", "vit", "--preset", "cifar10-gpu"]
TIME_LIMIT, MARGIN = "train.time_limit=", 60  # a run's time cap, and the seconds kept for its start and scoring
TOY_VIT = [*TINY_VIT, "--set", "data.val_size=4"]  # the rehearsal's ViT, on any small image or CIFAR-shaped folder
REAL_VIT_COMPILE = ["--set", "train.max_steps=300", "--set", "train.log_every=10"]  # images/s, compiled
SYNTH_VIT = ["--set", "train.max_steps=150", "--set", "data.val_size=256", "--set", "train.log_every=10"]


def training_stage(name: str, task: list[str], work: Path, extra: list[str], sizes: list[str], cap: int,
                   limit: float) -> tuple[str, list[str], float]:
    """A training run as a stage: ``task`` (``train TASK --preset ...``) into ``work / name``, then
    ``extra`` and ``sizes`` (``--set`` overrides), capped at ``cap`` seconds of training; the
    process gets ``limit`` seconds."""
    return name, [*task, "--out", str(work / name), *extra, *sizes, "--set", f"{TIME_LIMIT}{cap}"], limit


def stages(work: Path, synth: Path, cifar: Path | None, rehearse: bool,
           nanogpt: Path | None = None, plan: str = "first") -> list[tuple[str, list[str], float]]:
    """(name, attnlab arguments, time limit in seconds), in the order they run; run directories
    go under ``work``. ``plan`` is ``first`` (the measurements above) or ``follow-up`` (a second
    run of each GPU preset's figure; needs ``cifar``)."""
    if plan == "follow-up":
        return follow_up(work, cifar, rehearse)
    dev = ["--device", "cpu" if rehearse else "cuda"]
    one = ["--repeats", "1", "--dim", "32", "--heads", "2"]
    tiny = {"attention": ["--lengths", "16", *one],
            "gpt": ["--layers", "1", "--context", "16", "--vocab", "64", "--batch", "2", *one],
            "vit": ["--layers", "1", "--mlp-dim", "64", "--batch", "4", *one],
            "generate": ["--context", "16", "--num-tokens", "6", "--dim", "16", "--layers", "1", "--heads", "2",
                         "--vocab", "50", "--repeats", "1"]}
    nano = [] if nanogpt is None else ["--nanogpt", str(nanogpt)]
    benches: list[tuple[str, list[str], float]] = [
        (f"bench {b}", ["bench", b, *dev, *(tiny[b] if rehearse else []), *(nano if b == "generate" else [])], 90)
        for b in ("attention", "gpt", "vit", "generate")]
    char = training_stage("char-gpu", CHAR_GPU, work, [], TINY_GPT if rehearse else [], CHAR_GPU_CAP, CHAR_GPU_CAP + 60)
    if cifar is None:  # images/s only, on random images
        vit_synth = [*CIFAR10_GPU, "--data-dir", str(synth)]
        return [*benches, char, *((name, [*vit_synth, "--out", str(work / name), "--set", f"train.compile={compile_}",
                                          *(TOY_VIT if rehearse else SYNTH_VIT)], 150)
                                  for name, compile_ in (("vit-eager", "false"), ("vit-compile", "true")))]
    # with real data, the two training runs first (the figures the GPU presets are judged by), then the benches
    real = [*CIFAR10_GPU, "--data-dir", str(cifar)]
    vit = training_stage("cifar10-gpu", real, work, [], TOY_VIT if rehearse else [], CIFAR_GPU_CAP, CIFAR_GPU_CAP + 120)
    compiled = training_stage("vit-compile", real, work, ["--set", "train.compile=true"],
                              TOY_VIT if rehearse else REAL_VIT_COMPILE, 120, 180)
    return [vit, char, *benches[::-1], compiled]


def follow_up(work: Path, cifar: Path | None, rehearse: bool) -> list[tuple[str, list[str], float]]:
    """The next GPU session's plan (README, "On a GPU"): a second run of each preset's figure.
    ``char-gpu`` (its attention dropout now in the preset) on seed 1, eager, for a spread on its
    1.4618; then ``cifar10-gpu`` eager to its end on seed 0, the pair of the compiled seed-1 run
    that reached 86.17 % in 413 s (does compiling pay over a whole run?)."""
    if cifar is None:
        raise ValueError("the follow-up plan needs --cifar")
    char = training_stage("char-gpu-seed1", CHAR_GPU, work, ["--set", "train.seed=1"], TINY_GPT if rehearse else [],
                          CHAR_GPU_CAP, CHAR_GPU_CAP + 60)
    vit = training_stage("cifar10-gpu-eager-full", [*CIFAR10_GPU, "--data-dir", str(cifar)], work,
                         ["--set", "train.seed=0"], TOY_VIT if rehearse else [], 420, 480)
    return [char, vit]


def make_images(root: Path, per_class: int, classes: int = 10, size: int = 32) -> str | None:
    """A folder of random ``size`` x ``size`` PNGs, ``train/`` and ``test/`` (for throughput only);
    the reason it could not be made (no Pillow), or None."""
    import numpy as np

    try:
        from PIL import Image
    except ImportError:
        return "skipped (no Pillow to write and read the images)"
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("test", max(1, per_class // 10))):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return None


def missing_modules() -> list[str]:
    """attnlab's dependencies (and the benchmarks' references) that this Python cannot find (not imported)."""
    import importlib.util

    names = ("numpy", "safetensors", "tqdm", "matplotlib", "PIL", "tensorboard", "nltk", "transformers")
    return [n for n in names if importlib.util.find_spec(n) is None]


def headline(name: str, run_dir: Path) -> dict[str, Any]:
    """The figures a stage is run for, read from its run directory."""
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").exists() else {}
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()] \
        if (run_dir / "metrics.jsonl").exists() else []
    rates = [x[k] for x in lines for k in ("examples_per_sec", "tokens_per_sec") if k in x]
    keep = ("val_loss", "val_accuracy", "test_accuracy", "train_seconds", "steps")
    got: dict[str, Any] = {k: metrics[k] for k in keep if k in metrics}
    if rates:
        half = sorted(rates[len(rates) // 2:])  # the second half of the logged steps (compiles and warm-up excluded)
        got["rate_median_second_half"] = half[len(half) // 2]
    if name.startswith("char-gpu") and "val_loss" in got:
        got["nanogpt_val_loss"] = NANOGPT_CHAR_GPU
    return got


def run_stage(name: str, args: list[str], limit: float, out: Path) -> dict[str, Any]:
    """Run one stage with a time limit; its log, and its run's metrics files, are kept in ``out``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    start = time.time()
    log = out / f"{name.replace(' ', '-')}.log"
    with log.open("w") as f:
        try:
            rc: int | str = subprocess.run([sys.executable, "-c", CLI, *args], stdout=f, stderr=subprocess.STDOUT,
                                           env=env, timeout=limit, cwd=ROOT).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    record = {"stage": name, "command": "attnlab " + " ".join(args), "rc": rc, "wall_s": round(time.time() - start, 1),
              "log": log.name, "tail": log.read_text(errors="replace").splitlines()[-8:]}
    if "--out" in args:  # a training run: its figures, and its metrics (not its checkpoints) beside the log
        run_dir = Path(args[args.index("--out") + 1])
        record.update(headline(name, run_dir))
        for kept in ("config.json", "metrics.json", "metrics.jsonl"):
            if (run_dir / kept).exists():
                (out / name).mkdir(exist_ok=True)
                shutil.copyfile(run_dir / kept, out / name / kept)
    return record


def write_summary(out: Path, facts: dict[str, Any], records: list[dict[str, Any]]) -> None:
    (out / "summary.json").write_text(json.dumps({"facts": facts, "stages": records}, indent=1))
    lines = ["# Device checks (issue 26, item 7)", "", *(f"- {k}: {v}" for k, v in facts.items()), ""]
    for r in records:
        figures = {k: v for k, v in r.items() if k not in ("stage", "command", "rc", "wall_s", "log", "tail")}
        lines += [f"## {r['stage']}: rc {r['rc']}, {r['wall_s']} s", "", f"`{r['command']}`", "",
                  *(f"- {k}: {v}" for k, v in figures.items()), "", "```", *r["tail"], "```", ""]
    (out / "summary.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for summary.md, summary.json and each stage's log")
    p.add_argument("--budget", type=float, default=480, help="seconds for all stages (default 480)")
    p.add_argument("--cifar", type=Path, default=None, help="CIFAR-10 on the device, for the real cifar10-gpu run")
    p.add_argument("--cifar-wait", type=float, default=240,
                   help="seconds to wait for --cifar to appear, when it is still being unpacked (default 240)")
    p.add_argument("--nanogpt", type=Path, default=None, help="nanoGPT's model.py, for the decoding bench")
    p.add_argument("--plan", choices=("first", "follow-up"), default="first",
                   help="first: the benchmarks and the GPU presets; follow-up: a second run of each preset's figure "
                        "(needs --cifar)")
    p.add_argument("--rehearse", action="store_true", help="every stage on the CPU at toy sizes")
    args = p.parse_args(argv)
    if args.plan == "follow-up" and args.cifar is None:
        p.error("--plan follow-up needs --cifar DIR (it runs cifar10-gpu)")
    import torch

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not args.rehearse and not torch.cuda.is_available():
        print("device_checks: no CUDA GPU here; run it where `torch.cuda.is_available()` is true, or pass --rehearse",
              file=sys.stderr)
        return 2
    facts = {"torch": torch.__version__, "python": sys.version.split()[0], "budget_s": args.budget,
             "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() and not args.rehearse else "cpu",
             "missing modules": ", ".join(missing_modules()) or "none"}
    deadline = time.time() + args.budget
    work = Path(tempfile.mkdtemp(prefix="attnlab-device-checks-"))  # run directories and images, removed at the end
    synth = work / "synthetic-images"
    no_images = None if args.cifar else make_images(synth, per_class=2 if args.rehearse else 820)  # 16 steps of 512
    skip = {"vit-eager": no_images, "vit-compile": no_images} if no_images else {}
    plan = stages(work, synth, args.cifar, args.rehearse, args.nanogpt, args.plan)
    # every stage that reads --cifar waits for it (it may still be being unpacked)
    waits = {name: (args.cifar, args.cifar_wait) for name, stage_args, _ in plan
             if args.cifar is not None and str(args.cifar) in stage_args}
    records: list[dict[str, Any]] = []
    try:
        _run_all(plan, deadline, out, facts, records, skip, waits)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"device_checks: wrote {out / 'summary.md'}")
    return 0 if all(r["rc"] == 0 for r in records) else 1


def _run_all(plan: list[tuple[str, list[str], float]], deadline: float, out: Path, facts: dict[str, Any],
             records: list[dict[str, Any]], skip: dict[str, str],
             waits: dict[str, tuple[Path, float]] | None = None) -> None:
    """Run the stages in order while the budget lasts; ``skip`` names stages that cannot run, and why;
    ``waits`` a path a stage waits for (at most so many seconds) before it starts."""
    for name, stage_args, limit in plan:
        path, patience = (waits or {}).get(name, (None, 0.0))
        while path is not None and not path.exists() and patience > 0 and deadline - time.time() > 10:
            time.sleep(2)
            patience -= 2
        left = deadline - time.time()
        if path is not None and not path.exists():
            skip = {**skip, name: f"skipped ({path} did not appear)"}
        elif any(a.startswith(TIME_LIMIT) for a in stage_args) and 10 <= left < MARGIN + 60:
            skip = {**skip, name: f"skipped ({left:.0f} s left: too little for a training run)"}
        if left < 10 or name in skip:
            records.append({"stage": name, "command": "attnlab " + " ".join(stage_args),
                            "rc": skip.get(name, "skipped (budget spent)"), "wall_s": 0, "log": "", "tail": []})
        else:
            limit = min(limit, left)
            print(f"device_checks: {name} (at most {limit:.0f} s)", flush=True)
            records.append(run_stage(name, capped(stage_args, limit), limit, out))
        write_summary(out, facts, records)


def capped(args: list[str], limit: float, margin: float = MARGIN) -> list[str]:
    """``args`` with its ``train.time_limit`` lowered to ``limit - margin`` seconds where that is
    shorter, so that a run cut short by the budget still validates and scores itself."""
    n = len(TIME_LIMIT)
    return [f"{TIME_LIMIT}{min(float(a[n:]), max(limit - margin, 5)):g}" if a.startswith(TIME_LIMIT) else a
            for a in args]


if __name__ == "__main__":
    sys.exit(main())
