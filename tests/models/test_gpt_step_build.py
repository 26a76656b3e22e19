"""Building the C++ decoding step: what ``auto`` does where the build works, fails or cannot start
(the build itself, its folder and lock file: tests/test_native.py)."""

import pytest
from gpt_fixtures import one_thread, small_gpt  # noqa: F401  (one_thread: an autouse fixture)

from attnlab.models.gpt_step import DecodeStep


@pytest.fixture
def failing_build(monkeypatch):
    """Every build fails as one without ninja does (a long message); the cached outcome is
    forgotten before and after, so the next use loads the real build."""
    from torch.utils import cpp_extension

    from attnlab import native
    from attnlab.models import gpt_step_build

    def fail(**kwargs):
        raise RuntimeError("Ninja is required to load C++ extensions\n(and a long traceback)")

    monkeypatch.setattr(cpp_extension, "load", fail)
    monkeypatch.setattr(native, "can_build_native", lambda: True)  # the build is tried, as where it can be
    gpt_step_build.STEP.forget()
    yield
    gpt_step_build.STEP.forget()


def test_a_failed_build_says_what_it_needs(failing_build):
    from attnlab.errors import AttnlabError

    with pytest.raises(AttnlabError) as err:
        DecodeStep(small_gpt(), backend="cpp")
    message = str(err.value)
    assert "could not build the C++ decoding step (Ninja is required to load C++ extensions)" in message
    assert "pip install ninja" in message and "ATTNLAB_DECODE=python" in message and "\n" not in message


def test_auto_decodes_in_python_after_one_warning_when_the_build_fails(failing_build, capsys):
    # The default must work on any machine: a failed build is one line on stderr, once, then Python.
    model = small_gpt(seed=6)
    steps = [DecodeStep(model) for _ in range(2)]
    assert [s.backend for s in steps] == ["python", "python"] and steps[0]._native is None
    err = capsys.readouterr().err
    assert err.count("warning: could not build the C++ decoding step (Ninja is required") == 1
    assert "decoding in Python (ATTNLAB_DECODE=python skips the attempt)" in err


def test_auto_and_python_never_build_where_the_machine_cannot(monkeypatch):
    from torch.utils import cpp_extension

    from attnlab import native
    from attnlab.models import gpt_step_build

    def build(**kwargs):
        raise AssertionError("no build was to be tried")

    monkeypatch.setattr(cpp_extension, "load", build)
    monkeypatch.setattr(native, "can_build_native", lambda: False)
    gpt_step_build.STEP.forget()
    try:
        assert DecodeStep(small_gpt()).backend == "python"
        assert DecodeStep(small_gpt(), backend="python").backend == "python"
    finally:
        gpt_step_build.STEP.forget()


@pytest.mark.needs_compiler
def test_auto_runs_the_cpp_step_where_it_can_be_built():
    assert DecodeStep(small_gpt()).backend == "cpp" and DecodeStep(small_gpt())._native is not None
    assert DecodeStep(small_gpt(), backend="python").backend == "python"
