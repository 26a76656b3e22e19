"""Every field of every task's config, set to each of {0, -1, NaN, inf, huge, wrong type}: the run
either trains (one step) or stops with one `error:` line and exit code 2 -- never a traceback."""

from __future__ import annotations

import random
import traceback

import pytest
import torch

from attnlab.cli import main
from attnlab.config import config_keys
from attnlab.data import cifar10
from attnlab.tasks import TASKS

VALUES = ["0", "-1", "nan", "inf", "1e30", "abc"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "text.txt").write_text("\n\n".join(f"A{i % 4}:\nthe cat {'sat' if i % 2 else 'ran'} on mat {i % 9} ."
                                               for i in range(80)))
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for name in cifar10.TRAIN_FILES + cifar10.TEST_FILES:
        cifar10.write_batch(folder / name, torch.randint(0, 256, (10, 3, 32, 32), generator=g, dtype=torch.uint8),
                            (torch.arange(10) % 10).tolist())
    rng = random.Random(0)
    with open(root / "reviews.tsv", "w") as f:
        for i in range(40):
            words = " ".join(rng.choice(["good", "bad", "film"]) for _ in range(8))
            f.write(f"r{i}\t{'pos' if i % 2 else 'neg'}\t{words}\n")
    (root / "vectors.txt").write_text("good 1 0\nbad -1 0\nfilm 0 1\n")
    return {
        "toy": [],
        "gpt": ["--data", str(root / "text.txt")],
        "lstm-lm": ["--data", str(root / "text.txt")],
        "vit": ["--data-dir", str(root)],
        "text": ["--train", str(root / "reviews.tsv"), "--embeddings", str(root / "vectors.txt"),
                 "--cache-dir", str(root / "cache")],
    }


@pytest.mark.parametrize("task", TASKS.names())
def test_every_field_with_every_bad_value(task, inputs, tmp_path, capsys):
    keys = config_keys(TASKS.load(task).CONFIG)
    problems, trained = [], 0
    for key in keys:
        for value in VALUES:
            one_step = [] if key == "train.max_steps" else ["--set", "train.max_steps=1"]
            run = tmp_path / f"{key}={value}"
            argv = ["train", task, "--preset", "tiny", "--set", f"{key}={value}", *one_step, "--set",
                    "train.device=cpu", "--out", str(run), "--no-progress", *inputs[task]]
            try:
                code = main(argv)
            except BaseException:  # a traceback is exactly what must never happen
                problems.append(f"{key}={value}: {traceback.format_exc().splitlines()[-1]}")
                continue
            err = capsys.readouterr().err
            if code == 2:
                last = err.strip().splitlines()[-1] if err.strip() else ""
                if not last.startswith("error: "):
                    problems.append(f"{key}={value}: exit 2 without an error line: {err[-300:]!r}")
            elif code == 0:
                trained += 1
            else:
                problems.append(f"{key}={value}: exit code {code}")
    assert not problems, "\n".join(problems)
    assert trained >= 10  # the sweep did reach training, not only the parser
