"""The lazy `attnlab.*` exports: every name resolves to its defining module; `import attnlab` stays light."""

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
