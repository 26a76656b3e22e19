"""attnlab in a notebook: ``attnlab.explore`` shows the explorer's own page in an isolated frame, for
a checkpoint (the same data as ``Explorer.answer``) and for a model in memory; ``attnlab.curves`` is
a figure; training in a notebook shows a bar."""

from __future__ import annotations

import html
import json
import re
import sys

import pytest
import torch

import attnlab
from attnlab.data.tokenizer import MyTokenizer
from attnlab.engine import progress
from attnlab.errors import AttnlabError
from attnlab.models.gpt import GPTConfig, random_gpt
from attnlab.tasks import TASKS
from attnlab.viz.explorer import Explorer, Request, Sampling, unpack
from attnlab.viz.explorer_page import render


def framed_page(view) -> str:
    """The page inside the view's inline HTML: one iframe whose srcdoc is the page, escaped."""
    out = view._repr_html_()
    frames = re.findall(r'<iframe srcdoc="([^"]*)" sandbox="allow-scripts"', out)
    assert len(frames) == 1 and out.count("<iframe") == 1, out[:300]
    assert "<" not in frames[0] and '"' not in frames[0]  # escaped: nothing in it can end the attribute
    return html.unescape(frames[0])


def page_data(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', page, re.S)
    assert match, "no data in the page"
    return json.loads(match.group(1))


def same_page(view, expected: dict) -> None:
    """The framed page is the explorer's page of ``expected``, and its data equals it."""
    page = framed_page(view)
    assert page == render(expected)
    assert page_data(page) == json.loads(json.dumps(expected))
    assert view.data == expected


def test_a_checkpoint_inline_is_the_explorers_page(gpt_run, text_runs, toy_run, vit_run, tmp_path):
    view = attnlab.explore(gpt_run, prompt="ROMEO :", generate=5)
    expected = Explorer.load(gpt_run).answer(Request(text="ROMEO :", generate=5), sampling=Sampling())
    same_page(view, expected)
    assert expected["generation"]["steps"] and len(expected["tokens"]) == expected["generation"]["prompt_length"] + 5

    text = "a great film, not dull"
    same_page(attnlab.explore(text_runs / "transformer", text, layer=0),
              Explorer.load(text_runs / "transformer").answer(Request(text=text, layer=0)))
    same_page(attnlab.explore(toy_run, "3 1 4 1 5"), Explorer.load(toy_run).answer(Request(text="3 1 4 1 5")))
    run, data = vit_run
    same_page(attnlab.explore(run, images=[0, 3], data_dir=data),
              Explorer.load(run).answer(Request(images=[0, 3]), data_dir=data))

    out = view.save(tmp_path / "page.html")
    assert out.read_text(encoding="utf-8") == framed_page(view)


def test_a_model_in_memory_with_its_checkpoints_meta_gives_the_same_page(gpt_run, vit_run):
    model, meta = TASKS.load("gpt").load_model(gpt_run)
    expected = Explorer.load(gpt_run).answer(Request(text="ROMEO :", generate=4), sampling=Sampling())
    got = attnlab.explore(model, prompt="ROMEO :", generate=4, meta=meta).data
    assert got == {**expected, "checkpoint": ""}

    run, data = vit_run
    model, meta = TASKS.load("vit").load_model(run)
    explorer = Explorer.load(run)
    found = explorer.collect_images(Request(images=[1, 2]), data)
    expected = explorer.images(found)
    got = attnlab.explore(model, images=found.images, labels=meta["classes"]).data
    for page, want in zip(got["images"], expected["images"]):  # the same model on the same pixels
        assert page["attention"] == want["attention"] and page["pred"] == want["pred"]
        assert page["rollout"] == want["rollout"]
    with pytest.raises(AttnlabError, match=r"uint8 images \(n, 3, 32, 32\)"):
        attnlab.explore(model, images=found.images.float())


def test_a_random_dialogue_gpt_with_a_small_tokenizer():
    tok = MyTokenizer.build(["to be or not to be", "that is the question"])
    model = random_gpt(GPTConfig(vocab_size=len(tok.vocab), context=16, dim=16, num_heads=2, num_layers=2,
                                 mlp_dim=32))
    model.train()
    view = attnlab.explore(model, prompt="to be", generate=3, tokenizer=tok)
    assert model.training  # given back as it came
    data = page_data(framed_page(view))
    assert data["kind"] == "lm" and data["title"] == "DialogueGPT" and data["causal"]
    assert data["tokens"][:3] == ["<start>", "to", "be"] and len(data["tokens"]) == 6
    with torch.no_grad():  # the page's weights are the model's own, for the tokens it shows
        ids = torch.tensor([[tok.index[t] for t in data["tokens"]]])
        attended = model.eval().attend(ids)
    weights = unpack(data["attention"])  # (layers, heads, T, T)
    assert torch.allclose(weights, torch.stack([a[0] for a in attended.attentions]), atol=1e-5)
    assert "tokenizer=" in str(pytest.raises(AttnlabError, attnlab.explore, model, "to be").value)
    small = MyTokenizer.build(["to be or not to be that is the question whether tis nobler"])
    with pytest.raises(AttnlabError, match="more than the model's vocab_size"):
        attnlab.explore(model, "to be", tokenizer=small)


def test_a_text_classifier_in_memory_reads_its_vocabulary(text_runs):
    model, meta = TASKS.load("text").load_model(text_runs / "attention")
    text = "great wonderful film"
    expected = Explorer.load(text_runs / "attention").answer(Request(text=text))
    got = attnlab.explore(model, text, vocab=meta["vocab"]).data
    assert got["title"] == "AttentionClassifier"
    for key in ("tokens", "attention", "prediction"):
        assert got[key] == expected[key]
    with pytest.raises(AttnlabError, match="vocab="):
        attnlab.explore(model, text)


def test_a_model_without_attention_is_one_clear_error(text_runs):
    model, _ = TASKS.load("text").load_model(text_runs / "logreg")
    with pytest.raises(AttnlabError, match="LogisticRegressionClassifier has no attend method"):
        attnlab.explore(model, "a film")
    with pytest.raises(AttnlabError, match="no attend method"):
        attnlab.explore(torch.nn.Linear(2, 2), "a film")
    with pytest.raises(AttnlabError, match="a run directory or a model"):
        attnlab.explore(42, "a film")


def test_curves_is_a_figure_of_the_logged_points(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    records = [{"step": 2, "val_loss": 1.5}, {"step": 4, "val_loss": 1.0}, {"step": 5, "train_loss": 3.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    fig = attnlab.curves(run)
    (line,) = fig.axes[0].get_lines()
    assert list(line.get_xdata()) == [2, 4] and list(line.get_ydata()) == [1.5, 1.0]


def test_a_notebook_shows_a_bar_not_log_lines(monkeypatch, tmp_path):
    monkeypatch.setattr(progress, "IN_NOTEBOOK", True)
    log = (tmp_path / "log").open("w")  # stderr is not a terminal
    monkeypatch.setattr(sys, "stderr", log)
    shown = progress.Progress(10, time_limit=None, enabled=True)
    shown.start(0, 0.0, None)
    assert not shown.bar.disable and not shown.log_lines
    shown.close()
    monkeypatch.setattr(progress, "IN_NOTEBOOK", False)  # a log file: lines, no bar (unchanged)
    logged = progress.Progress(10, time_limit=None, enabled=True)
    logged.start(0, 0.0, None)
    assert logged.bar.disable and logged.log_lines
    logged.close()
    log.close()


def test_attention_map_is_a_figure_of_the_models_own_maps(vit_run):
    import numpy as np

    from attnlab.data.augment import normalize
    from attnlab.data.images import load_images
    from attnlab.tasks import load_trained
    from attnlab.viz.attention_map import attention_rollout, cls_attention, upsample

    run, data_dir = vit_run
    _, test = load_images(data_dir, 32)
    images, labels = test.images[:3], test.labels[:3].tolist()
    _, model, meta = load_trained(run)
    with torch.no_grad():
        seen = model.attend(normalize(images))
    preds = seen.output.argmax(-1).tolist()
    for rollout, summary in ((False, cls_attention), (True, attention_rollout)):
        fig = attnlab.attention_map(run, images, labels=labels, rollout=rollout)
        drawn = [ax.get_images()[1].get_array() for ax in fig.axes if ax.get_title() == "attention"]
        expected = upsample(summary(seen.attentions), seen.grid, (32, 32))  # (3, 32, 32)
        assert len(drawn) == 3
        for got, want in zip(drawn, expected):
            np.testing.assert_allclose(np.asarray(got), want.numpy(), atol=1e-6)
        titles = [ax.get_title() for ax in fig.axes if ax.get_title().startswith("true")]
        assert titles == [f"true: {meta['classes'][t]}\npred: {meta['classes'][p]}" for t, p in zip(labels, preds)]
    with pytest.raises(AttnlabError, match="give one label per image: 3 images, 1 labels"):
        attnlab.attention_map(run, images, labels=[0])
