"""Decoding in one process alone, beside a busy process, and just after it leaves (the stall watch).

Run from the repository root (the package need not be installed)::

    flock /tmp/attnlab-heavy.lock python tools/decode_beside.py

It builds the default GPT's shape with random weights, generates ``--words`` words greedily
``--runs`` times alone, then beside ``python -c "while True: pass"``, then ``--runs`` + 3 times
after killing it, and prints each generation's milliseconds per word, how many times
:class:`attnlab.threads.StallWatch` switched to one thread in that phase (its warnings), and
whether a generation started at the end would start on one thread. The README's "A shared CPU"
quotes its output.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=256, help="words per generation (default 256)")
    parser.add_argument("--runs", type=int, default=5, help="generations alone and beside (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds the busy process runs first (default 2)")
    args = parser.parse_args(argv)

    import torch

    from attnlab import threads
    from attnlab.models.configs import GPTConfig
    from attnlab.models.gpt import generate, random_gpt

    torch.set_num_threads(args.threads)
    model = random_gpt(GPTConfig(vocab_size=6187))
    generate(model, [1], args.words)

    def timed(runs: int) -> str:
        """Each generation's ms per word, and the watch's switches to one thread meanwhile."""
        ms = []
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            for _ in range(runs):
                start = time.perf_counter()
                generate(model, [1], args.words)
                ms.append((time.perf_counter() - start) / args.words * 1e3)
        switches = sum("decoding steps stalled" in str(w.message) for w in said)
        return " ".join(f"{m:.3f}" for m in ms) + f"  switches to one thread: {switches}"

    print(f"ms per word, {args.words} words, {args.threads} threads; load average {os.getloadavg()[0]:.2f}")
    print(f"alone         {timed(args.runs)}")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(args.settle)
        print(f"beside        {timed(args.runs)}")
    finally:
        spinner.kill()
        spinner.wait()
    print(f"after it left {timed(args.runs + 3)}; a generation started now would start on "
          f"{'one thread' if threads.StallWatch().one_thread else 'all the threads'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
