"""The language-model tasks' shared pieces (tasks/lm.py): a training run's samples."""

import pytest
import torch

from attnlab.data.tokenizer import MyTokenizer
from attnlab.models.configs import SampleConfig
from attnlab.models.gpt import DialogueGPT, GPTConfig, generate
from attnlab.tasks.lm import print_sample


@pytest.mark.parametrize(("env", "asked"), [(None, "python"), ("auto", "python"), ("python", "python"), ("cpp", "cpp")])
def test_training_samples_never_build_the_cpp_step_unless_asked(monkeypatch, capsys, env, asked):
    # A sample is a few dozen words: under auto it decodes in Python (no 20 s build inside the
    # run); a value the user set is followed. The words are generate's, either way.
    from attnlab.models import gpt_step

    tok = MyTokenizer.build(["the cat sat on the mat", "a dog ran"])
    torch.manual_seed(0)
    model = DialogueGPT(GPTConfig(vocab_size=len(tok), context=16, dim=16, num_heads=2, num_layers=1,
                                  mlp_dim=32, dropout=0.0))
    if env is None:
        monkeypatch.delenv("ATTNLAB_DECODE", raising=False)
    else:
        monkeypatch.setenv("ATTNLAB_DECODE", env)
    seen = []
    monkeypatch.setattr(gpt_step, "native_for", lambda backend: seen.append(backend))  # Python, and noted
    s = SampleConfig(prompt="the cat", num_tokens=5, temperature=0.8, top_k=3)
    text = print_sample(model, tok, s, stream=False, seed=4)
    assert seen == [asked]
    prefix = tok.encode("the cat")
    want = generate(model, prefix, 5, temperature=0.8, top_k=3, seed=4, decode="python")
    assert text == tok.decode(prefix + want) and capsys.readouterr().out == f"sample: {text}\n"


def test_a_bad_decode_choice_stops_before_the_first_id():
    from attnlab.errors import AttnlabError
    from attnlab.models.gpt import iter_generate

    torch.manual_seed(0)
    model = DialogueGPT(GPTConfig(vocab_size=20, context=8, dim=16, num_heads=2, num_layers=1, mlp_dim=32))
    assert generate(model, [3, 4], 3, decode="python") == generate(model, [3, 4], 3, decode="auto")
    with pytest.raises(AttnlabError, match="ATTNLAB_DECODE='fast' is not one of auto, python, cpp"):
        next(iter_generate(model, [3], 2, decode="fast"))


def test_a_gpt_run_builds_the_attention_kernel_before_training_and_cpp_without_one_stops_it(
        monkeypatch, capsys, tmp_path):
    # The one-time build must not land inside the run's training time, and ATTNLAB_ATTENTION=cpp
    # where it cannot be built is one error line before any step.
    from attnlab import attention_kernel
    from attnlab.cli import main
    from attnlab.data.shakespeare import load_text

    data = tmp_path / "small.txt"
    data.write_text(load_text()[:5000], encoding="utf-8")
    monkeypatch.setattr(attention_kernel.KERNEL, "built_or_reason", lambda: (None, "no compiler here"))
    monkeypatch.setenv("ATTNLAB_ATTENTION", "cpp")
    code = main(["train", "gpt", "--preset", "tiny", "--set", "train.max_steps=2", "--data", str(data),
                 "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "ATTNLAB_ATTENTION=cpp could not build the C++ attention kernel (no compiler here)" in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    calls = []
    monkeypatch.setenv("ATTNLAB_ATTENTION", "torch")
    monkeypatch.setattr(attention_kernel, "build_if_served", lambda context, device: calls.append((context, device)))
    assert main(["train", "gpt", "--preset", "tiny", "--set", "train.max_steps=2", "--data", str(data),
                 "--out", str(tmp_path / "run2"), "--no-progress"]) == 0
    assert len(calls) == 1 and calls[0][0] == 32 and str(calls[0][1]) == "cpu"


def test_build_if_served_asks_only_where_the_kernel_would_serve(monkeypatch):
    from attnlab import attention_kernel

    asked = []
    monkeypatch.setattr(attention_kernel, "kernel_for", lambda qkv, p: asked.append(qkv.size(1)))
    attention_kernel.build_if_served(64, "cpu")
    attention_kernel.build_if_served(attention_kernel.MAX_CONTEXT + 1, "cpu")  # PyTorch's flash kernel
    attention_kernel.build_if_served(64, "cuda")
    assert asked == [64]
