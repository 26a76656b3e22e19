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
