"""The lazy `attnlab.*` and `attnlab.engine.*` exports: every name resolves to its defining module;
`import attnlab` and the start of a task command (help, configs, presets, a bad --set) stay light."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import attnlab


def test_every_exported_name_resolves_to_the_object_of_its_module():
    assert attnlab.__all__ == list(attnlab._EXPORTS) and len(set(attnlab.__all__)) == len(attnlab.__all__)
    for name in attnlab.__all__:
        module = importlib.import_module(attnlab._EXPORTS[name])
        assert getattr(attnlab, name) is getattr(module, name), name
        assert name in dir(attnlab)
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        attnlab.NoSuchThing  # noqa: B018


def test_star_import_gives_every_name():
    namespace: dict = {}
    exec("from attnlab import *", namespace)
    assert set(attnlab.__all__) <= set(namespace)


def test_import_attnlab_does_not_import_torch():
    code = ("import sys, json, attnlab; before = 'torch' in sys.modules; attnlab.AttnlabError; "
            "after_error = 'torch' in sys.modules; attnlab.causal_mask; "
            "print(json.dumps([before, after_error, 'torch' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # torch arrives only with the first name that needs it (AttnlabError does not)
    assert json.loads(done.stdout) == [False, False, True]


def test_cli_help_does_not_import_torch():
    code = ("import contextlib, io, sys, attnlab.cli\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    attnlab.cli.main(['--help'])\n"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "False\n"


def test_engine_names_resolve_lazily_and_evaluate_stays_the_function():
    """``attnlab.engine`` imports each name on first use; ``evaluate``, a submodule's name too, is the
    function even after ``fit`` loaded that submodule (as when the package imported it eagerly)."""
    code = ("import sys, attnlab.engine.config; before = 'torch' in sys.modules\n"
            "from attnlab.engine import fit\n"
            "from attnlab.engine import evaluate\n"
            "import attnlab.engine; module = sys.modules['attnlab.engine.evaluate']\n"
            "print(before, callable(evaluate), evaluate is module.evaluate is attnlab.engine.evaluate, "
            "attnlab.engine.fit is fit, set(attnlab.engine.__all__) == set(attnlab.engine._EXPORTS))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "False True True True True\n"


# What `attnlab train|eval|sweep TASK` answers from the configs alone, in one process per check below.
STARTUP = """\
import contextlib, io, json, sys
from attnlab import cli, threads
from attnlab.tasks import TASKS

looks = []  # the look at the other processes sleeps 0.15 s on a machine that is not quiet
threads.busy_cores = lambda *args, **kwargs: looks.append(1) or 0.0

def main(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
            code = exc.code
    return code, out.getvalue(), err.getvalue()

results = {task: {
    "print_config": main("train", task, "--set", "train.lr=0.5", "--set", "train.seed=7", "--print-config"),
    "unknown_key": main("train", task, "--set", "nonsense=1"),
    "bad_value": main("train", task, "--set", "train.lr=-1"),
    "unknown_option": main("train", task, "--bogus"),
    "list_presets": main("train", task, "--list-presets"),
    "train_help": main("train", task, "--help"),
    "eval_help": main("eval", task, "--help"),
    "sweep_help": main("sweep", task, "--help"),
    "sweep_unknown_key": main("sweep", task, "--set", "nonsense=1", "--grid", "train.lr=1e-3,3e-4", "--out", "sweep"),
} for task in TASKS}
helps = {name: main(name, "--help") for name in ("predict", "explain", "attention-map", "generate", "explore")}
heavy = [name for name in ("torch", "numpy", "nltk") if name in sys.modules]
print(json.dumps({"results": results, "helps": helps, "heavy": heavy, "looks": len(looks)}))
"""


def test_task_commands_start_without_torch(tmp_path):
    """Building the train, eval and sweep parsers of every task, printing its config with a ``--set``
    override, refusing a bad one (the usual one-line error, exit 2), listing the presets: all from
    torch-free config modules, so that these answers are fast. torch (and numpy and nltk, each a
    large share of the 0.3 s start-up budget) come only when work starts."""
    from attnlab.tasks import TASKS

    done = subprocess.run([sys.executable, "-c", STARTUP], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["heavy"] == [], f"{report['heavy']} imported before any work started"
    assert report["looks"] == 0  # the OpenMP wait policy is chosen when torch loads, not for these
    assert list(report["results"]) == TASKS.names()
    for task, got in report["results"].items():
        code, out, err = got["print_config"]
        assert code == 0 and err == "", (task, err)
        assert "train.lr = 0.5  # float > 0\n" in out and "train.seed = 7  #" in out, task
        code, out, err = got["unknown_key"]
        assert code == 2 and err.startswith("error: unknown config key 'nonsense' (valid keys: "), (task, err)
        assert err.count("\n") == 1 and "model." in err and "train.lr" in err, task
        assert got["bad_value"] == [2, "", "error: config key 'train.lr' must be > 0, got -1.0\n"], task
        code, out, err = got["unknown_option"]
        assert code == 2 and f"attnlab train {task}: error: unrecognized arguments: --bogus" in err, task
        code, out, err = got["list_presets"]
        assert code == 0 and "(default)" in out, task
        for command in ("train", "eval", "sweep"):
            code, out, err = got[f"{command}_help"]
            assert code == 0 and out.startswith(f"usage: attnlab {command} {task} "), (task, command, err)
        code, out, err = got["sweep_unknown_key"]
        assert code == 2 and err.startswith("error: unknown config key 'nonsense'"), (task, err)
    for name, (code, out, err) in report["helps"].items():  # the commands that load a model, before they do
        assert code == 0 and out.startswith(f"usage: attnlab {name} "), (name, err)
    assert not (tmp_path / "runs").exists()  # nothing was written for what only asked or was refused
