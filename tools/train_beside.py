"""Training with a busy process that arrives after it started: the notice, and the way out it gives.

Run from the repository root (the package need not be installed)::

    flock /tmp/attnlab-heavy.lock python tools/train_beside.py

It starts ``attnlab train gpt --preset char-cpu`` (``--steps`` steps, validation every
``--eval-every``, a log record every ``--log-every``), starts ``python -c "while True: pass"``
``--after`` seconds later, and waits for the training's warning that its steps stall
(:class:`attnlab.threads.NeighbourNotice`). Then it does what the warning says: it stops the run
(SIGTERM, as Ctrl-C) and runs the same command with ``--resume`` beside the same busy process.
With ``--no-resume`` it lets the first run finish beside it instead. It prints the throughput
of every log record (alone, beside the busy process, and after the resume), the warning, the
resumed run's thread note, and both runs' last lines. The README's "A shared CPU" quotes its
output.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

from attnlab.threads import NEIGHBOUR_WARNING  # noqa: E402  (after the path above; torch-free)

LAUNCH = "import sys; from attnlab.cli import main; sys.exit(main())"


def _rates(out: Path) -> list[tuple[int, float]]:
    """(step, tokens/s) of every training record logged so far."""
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(r["step"], r["tokens_per_sec"]) for r in rows if "tokens_per_sec" in r]


def _show(label: str, rates: list[tuple[int, float]]) -> str:
    return f"{label:14s}" + (" ".join(f"{step}:{rate / 1000:.1f}k" for step, rate in rates) or "(no record)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="char-cpu", help="the GPT preset to train (default char-cpu)")
    parser.add_argument("--steps", type=int, default=700, help="training steps (default 700)")
    parser.add_argument("--eval-every", type=int, default=100, help="steps between checkpoints (default 100)")
    parser.add_argument("--log-every", type=int, default=25, help="steps between log records (default 25)")
    parser.add_argument("--after", type=float, default=10.0, help="seconds before the busy process starts (default 10)")
    parser.add_argument("--wait", type=float, default=3.0, help="seconds between the warning and the stop (default 3)")
    parser.add_argument("--no-resume", action="store_true", help="let the run finish beside the busy process")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: a temporary one)")
    args = parser.parse_args(argv)

    out = args.out or Path(tempfile.mkdtemp(prefix="train-beside-")) / "run"
    command = [sys.executable, "-c", LAUNCH, "train", "gpt", "--preset", args.preset, "--out", str(out),
               "--set", f"train.max_steps={args.steps}", "--set", f"train.eval_every={args.eval_every}",
               "--set", f"train.log_every={args.log_every}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    env.pop("OMP_WAIT_POLICY", None)  # the command line chooses it, as a user's would
    print(f"{args.preset}, {args.steps} steps; load average {os.getloadavg()[0]:.2f}; tokens/s per log record")
    log = out.parent / "first.log"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as sink:
        first = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    start, spinner, said = time.monotonic(), None, None
    alone: list[tuple[int, float]] = []
    try:
        while first.poll() is None:
            time.sleep(0.2)
            if spinner is None and time.monotonic() - start >= args.after:
                alone = _rates(out)
                spinner, arrived = subprocess.Popen([sys.executable, "-c", "while True: pass"]), time.monotonic()
            if spinner is not None and said is None:
                said = next((line for line in log.read_text().splitlines() if line.startswith(NEIGHBOUR_WARNING)), None)
                if said is not None:
                    print(f"the warning, {time.monotonic() - arrived:.1f} s after the busy process started:\n  {said}")
                    if not args.no_resume:
                        time.sleep(args.wait)
                        first.send_signal(signal.SIGTERM)
        first.wait()
        lines = log.read_text().splitlines()
        rates = _rates(out)
        if spinner is None:  # the run ended first
            alone = rates
        beside = rates[len(alone):]
        print(_show("alone", alone))
        print(_show("beside", beside))
        print(f"first run: exit {first.returncode}; {lines[-1].strip() if lines else '(no output)'}")
        if said is None:
            print("no warning")
        if said is None or args.no_resume or first.returncode == 0:
            return 0
        resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, env=env)
        output = resumed.stdout + resumed.stderr
        lines = output.splitlines()
        note = next((line for line in lines if "CPU thread" in line), "(no thread note)")
        print(f"resumed:       {note.strip()}")
        match = re.search(r"resuming at step (\d+)", output)
        since = int(match.group(1)) if match else args.steps
        print(_show("after resume", [r for r in _rates(out) if r[0] > since]))
        last = (resumed.stdout.strip().splitlines() or lines or ["(no output)"])[-1]  # the metrics line
        print(f"resumed run: exit {resumed.returncode}; {last.strip()}")
        return resumed.returncode
    finally:
        if first.poll() is None:
            first.kill()
        if spinner is not None:
            spinner.kill()
            spinner.wait()
        print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
