"""Every field of every task's config, set to each of {0, -1, NaN, inf, huge, wrong type}: the run
either trains (one step) or stops with one `error:` line and exit code 2 -- never a traceback."""

from __future__ import annotations

import random
import traceback

import pytest

from attnlab.cli import main
from attnlab.commands import train as train_command
from attnlab.config import config_keys
from attnlab.errors import AttnlabError
from attnlab.tasks import TASKS

VALUES = ["0", "-1", "nan", "inf", "1e30", "abc"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, make_cifar):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "text.txt").write_text("\n\n".join(f"A{i % 4}:\nthe cat {'sat' if i % 2 else 'ran'} on mat {i % 9} ."
                                               for i in range(80)))
    make_cifar(root)
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


@pytest.fixture
def raised(monkeypatch):
    """The exception that the last ``attnlab train`` command raised inside ``main`` (which turns an
    AttnlabError into ``error: ...`` and exit code 2), or None: so the test sees the type itself."""
    seen: list[BaseException] = []
    run = train_command.run

    def recording_run(args):
        seen.clear()
        try:
            return run(args)
        except BaseException as exc:
            seen.append(exc)
            raise

    monkeypatch.setattr(train_command, "run", recording_run)
    return seen


def crash(exc: BaseException) -> str:
    """The head of a traceback: the exception and the frame that raised it."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename.split('/src/')[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}{where}"


@pytest.mark.parametrize("task", TASKS.names())
def test_every_field_with_every_bad_value(task, inputs, tmp_path, capsys, raised):
    keys = config_keys(TASKS.load(task).CONFIG)
    problems, trained, refused = [], 0, 0
    for key in keys:
        for value in VALUES:
            one_step = [] if key == "train.max_steps" else ["--set", "train.max_steps=1"]
            run = tmp_path / f"{key}={value}"
            argv = ["train", task, "--preset", "tiny", "--set", f"{key}={value}", *one_step, "--set",
                    "train.device=cpu", "--out", str(run), "--no-progress", *inputs[task]]
            raised.clear()
            try:
                code = main(argv)
            except BaseException as exc:  # a traceback is exactly what must never happen
                problems.append(f"{key}={value}: {crash(exc)}")
                continue
            err = capsys.readouterr().err
            exc = raised[0] if raised else None
            if exc is not None and not isinstance(exc, AttnlabError):  # only a usage error may stop a run
                problems.append(f"{key}={value}: exit {code} after {crash(exc)}")
            elif code == 2:
                last = err.strip().splitlines()[-1] if err.strip() else ""
                if not isinstance(exc, AttnlabError):
                    problems.append(f"{key}={value}: exit 2 without an AttnlabError from the command: {err[-300:]!r}")
                elif last != f"error: {exc}".splitlines()[-1] or not str(exc).strip():
                    problems.append(f"{key}={value}: exit 2 without its error line: {err[-300:]!r}")
                else:
                    refused += 1
            elif code == 0 and exc is None:
                trained += 1
            else:
                problems.append(f"{key}={value}: exit code {code}")
    assert not problems, "\n".join(problems)
    assert trained >= 10  # the sweep did reach training, not only the parser
    assert refused >= 10  # and the bad values were refused, as clear usage errors
