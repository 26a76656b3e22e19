"""Every field of every task's config, set to each of {0, -1, NaN, inf, huge, wrong type}: the run
either trains (one step) or stops with one `error:` line and exit code 2 -- never a traceback.

Most of the values never reach a model: the config refuses them (`attnlab.config.validate`, each
section's `check()`) before `attnlab train` builds anything. So each value is first validated as the
command validates it, without the command; only the configs that pass (about one in ten) run the
whole command and train one step, plus one refused config per task, to see the command print the
config's refusal as its `error:` line."""

from __future__ import annotations

import copy
import traceback
from typing import Any

import pytest

from attnlab.cli import main
from attnlab.commands import train as train_command
from attnlab.config import apply_overrides, build_config, config_keys, validate
from attnlab.errors import AttnlabError
from attnlab.tasks import TASKS

VALUES = ["0", "-1", "nan", "inf", "1e30", "abc"]


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


def refusal(cfg: Any, overrides: list[str]) -> AttnlabError | None:
    """What ``attnlab train`` does with ``--set`` ``overrides`` before it builds anything: the
    AttnlabError that refuses them, or None if the config it would train is valid. ``cfg`` is the
    built preset, so this is build_config(CONFIG, "tiny", overrides) without setting the preset
    again for each of the ~1,200 values (most of what validating them costs)."""
    try:
        validate(apply_overrides(copy.deepcopy(cfg), overrides))
    except AttnlabError as exc:
        return exc
    return None


@pytest.mark.parametrize("task", TASKS.names())
def test_every_field_with_every_bad_value(task, task_flags, tmp_path, capsys, raised):
    module = TASKS.load(task)
    preset = build_config(module.CONFIG, "tiny")
    problems: list[str] = []
    accepted: list[list[str]] = []
    refused: list[tuple[list[str], str]] = []  # the overrides and the config's refusal
    for key in config_keys(module.CONFIG):
        for value in VALUES:
            one_step = [] if key == "train.max_steps" else ["train.max_steps=1"]
            overrides = [f"{key}={value}", *one_step, "train.device=cpu"]
            try:
                exc = refusal(preset, overrides)
            except Exception as crashed:  # the config layer itself raised something else: a traceback
                problems.append(f"{key}={value}: {crash(crashed)}")
                continue
            if exc is None:
                accepted.append(overrides)
            elif not str(exc).strip():
                problems.append(f"{key}={value}: refused without a message ({type(exc).__name__})")
            else:
                refused.append((overrides, str(exc)))
    # A valid config goes through the whole command: it trains one step, or what refuses it (the
    # data, the memory check, a model's own rule) is one `error:` line and exit code 2. The first
    # refused config does too: the command prints the config's own refusal as that line.
    trained = 0
    runs: list[tuple[list[str], str | None]] = [(o, None) for o in accepted] + [*refused[:1]]
    for overrides, refusal_message in runs:
        run = tmp_path / overrides[0]
        argv = ["train", task, "--preset", "tiny", *(a for o in overrides for a in ("--set", o)), "--out", str(run),
                "--no-progress", *task_flags[task]]
        raised.clear()
        try:
            code = main(argv)
        except BaseException as exc:  # a traceback is exactly what must never happen
            problems.append(f"{overrides[0]}: {crash(exc)}")
            continue
        err = capsys.readouterr().err
        exc = raised[0] if raised else None
        if exc is not None and not isinstance(exc, AttnlabError):  # only a usage error may stop a run
            problems.append(f"{overrides[0]}: exit {code} after {crash(exc)}")
        elif code == 2:
            last = err.strip().splitlines()[-1] if err.strip() else ""
            if not isinstance(exc, AttnlabError):
                problems.append(f"{overrides[0]}: exit 2 without an AttnlabError from the command: {err[-300:]!r}")
            elif last != f"error: {exc}".splitlines()[-1] or not str(exc).strip():
                problems.append(f"{overrides[0]}: exit 2 without its error line: {err[-300:]!r}")
            elif refusal_message is not None and str(exc) != refusal_message:
                problems.append(f"{overrides[0]}: the command refused it with {exc} instead of {refusal_message}")
        elif refusal_message is not None:
            problems.append(f"{overrides[0]}: the command did not refuse it (exit {code}), its config does")
        elif code == 0 and exc is None:
            trained += 1
        else:
            problems.append(f"{overrides[0]}: exit code {code}")
    assert not problems, "\n".join(problems)
    assert trained >= 10  # the sweep did reach training, not only the parser
    assert len(refused) >= 10  # and the bad values were refused, as clear usage errors
