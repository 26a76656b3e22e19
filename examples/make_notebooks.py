"""Write the example notebooks (examples/*.ipynb) from the cells below, without outputs.

    python examples/make_notebooks.py        # needs nbformat (pip install -e '.[notebook]')

Edit a notebook here, or in Jupyter and then clear its outputs: tests/examples/test_notebooks.py
runs every notebook at BUDGET = "smoke" and fails on a committed output.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

# The first cell of every notebook: the budget, and attnlab installed where it is missing (Colab).
SETUP = '''\
import importlib.util
import os
import subprocess
import sys

# BUDGET: "smoke" trains for seconds (tiny models, small or generated data) to see every step work;
#         "full" runs the README's recipes and reproduces its numbers (minutes to half an hour on 2 CPU cores).
BUDGET = os.environ.get("ATTNLAB_BUDGET", "smoke")

if importlib.util.find_spec("attnlab") is None:  # Colab, or a kernel without attnlab: install it first
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "attnlab[notebook]"])'''

# The second cell: attnlab's imports (after the install above) and the places runs and data go.
IMPORTS = '''\
from pathlib import Path

import torch

import attnlab
from attnlab.config import build_config
from attnlab.engine.rundir import new_run_dir
from attnlab.tasks import TASKS

assert BUDGET in ("smoke", "full"), f"BUDGET is 'smoke' or 'full', not {BUDGET!r}"
SMOKE = BUDGET == "smoke"
DATA = Path(os.environ.get("ATTNLAB_DATA", "data"))  # the data sets (`attnlab data fetch NAME --dest data`)
RUNS = Path("runs")  # every training run gets a fresh folder here
%matplotlib inline'''


def transformers_vit_gpt() -> list:
    return [
        new_code_cell(SETUP),
        new_code_cell(IMPORTS),
        new_markdown_cell('''\
# 2. Transformers: a Vision Transformer, and a GPT on Shakespeare

This notebook trains two Transformers with attnlab and looks inside them:

1. a **Vision Transformer** (ViT), where the class token's attention shows which patches of an image
   the prediction rests on;
2. **DialogueGPT**, a small GPT language model, on the bundled Tiny Shakespeare, against an LSTM, and
   its generation step by step: which earlier words each new word looked at.

Run all cells. With `BUDGET = "smoke"` (the first cell) everything takes well under a minute;
`"full"` trains the README's recipes (about 30 minutes for the ViT on CIFAR-10, 2 for the GPT).
The explorer pages below are interactive: pick a layer and a head, hover or click.'''),
        new_markdown_cell('''\
## 1. A Vision Transformer

A ViT cuts an image into patches, turns each into a token, puts a learned **class token** in
front, and classifies from the class token's output after the last layer. So the class token's
attention row tells which patches it read.

With the smoke budget the images are generated: grey noise with one coloured square somewhere,
and the class is the square's colour. A ViT that has learned the task must find the square,
which makes its attention easy to check by eye. The full budget uses CIFAR-10
(`attnlab.data.cifar10.fetch` downloads it once, 170 MB).'''),
        new_code_cell('''\
import numpy as np
from PIL import Image

COLOURS = {"red": (230, 40, 40), "green": (40, 210, 40), "blue": (50, 80, 240), "yellow": (230, 220, 40)}


def write_squares(root: Path, per_class: int, seed: int = 0) -> Path:
    """An image folder (root/train/<class>/*.png, root/test/<class>/*.png) of 32x32 grey noise with an
    8x8 square of the class's colour at a random place."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("test", per_class // 5)):
        for name, colour in COLOURS.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image = np.repeat(rng.integers(0, 120, (32, 32, 1), dtype=np.uint8), 3, axis=2)
                top, left = rng.integers(0, 25, 2)
                image[top:top + 8, left:left + 8] = colour
                Image.fromarray(image).save(folder / f"{i:04d}.png")
    return root


if SMOKE:
    vit_data = write_squares(Path("squares"), per_class=100)
else:
    from attnlab.data import cifar10

    vit_data = cifar10.fetch(DATA)  # a folder that already holds CIFAR-10 is used as it is
vit_data'''),
        new_markdown_cell('''\
Training goes through the task's `train`, as `attnlab train vit` does: a config built from a
named preset with `--set`-style overrides, the data's location, and a run directory. It returns
the final metrics; the progress bar below is a notebook widget.'''),
        new_code_cell('''\
vit = TASKS.load("vit")
if SMOKE:  # a 2-layer ViT reading a 4x4 grid of 8x8 patches, 10 epochs
    vit_cfg = build_config(vit.CONFIG, "tiny", [
        "model.num_layers=2", "data.val_size=40", "train.epochs=10", "train.lr=3e-3", "train.log_every=10"])
else:  # the default preset, cifar10-cpu (README, "Vision Transformer")
    vit_cfg = build_config(vit.CONFIG)
vit_run = new_run_dir("vit", root=RUNS)
vit_metrics = vit.train(vit_cfg, vit.INPUTS(data_dir=vit_data), vit_run)
{k: round(v, 4) for k, v in vit_metrics.items() if k.startswith(("val_", "test_", "train_seconds"))}'''),
        new_markdown_cell('''\
The learning curve, from the run's `metrics.jsonl` (`attnlab.curves` returns a matplotlib figure):'''),
        new_code_cell('attnlab.curves(vit_run, y="val_accuracy")'),
        new_markdown_cell('''\
### What the class token looks at

Below, each test image under the class token's attention. **Look at**: the last layer, heads
averaged (the default): on the generated images the coloured square should light up, and the
prediction follows it. Switch to *rollout* to multiply the layers' attention together, and click
a patch to see what that patch attended to instead of the class token.'''),
        new_code_cell('''\
test_images = [0, 20, 40, 60] if SMOKE else list(range(8))  # smoke: the first test image of each class
attnlab.explore(vit_run, images=test_images, data_dir=vit_data)'''),
        new_markdown_cell('''\
`explore` also takes a model in memory. Here is an **untrained** ViT of the same shape on the
same images: its class token spreads its attention over the image with no regard for the square.
Compare the heatmaps with the trained model's above.'''),
        new_code_cell('''\
from attnlab.data.images import load_images
from attnlab.models.vit import VisionTransformer

torch.manual_seed(0)
untrained = VisionTransformer(vit_cfg.model)
_, test_set = load_images(vit_data, vit_cfg.model.image_size)  # uint8 images (n, 3, 32, 32) and their labels
attnlab.explore(untrained, images=test_set.images[test_images], labels=list(test_set.classes))'''),
        new_markdown_cell('''\
## 2. DialogueGPT on Tiny Shakespeare

DialogueGPT reads a speaker's turn as words. Its tokenizer (`MyTokenizer`) is built from the
training turns; every turn starts with `<start>`, and rare words become `<unk>`. The loss is the
cross-entropy of each next word, **masked** so that padding at the end of a short turn counts
for nothing (`attnlab.DialogueLoss`).'''),
        new_code_cell('''\
from attnlab import MyTokenizer

tok = MyTokenizer.build(["First Citizen: Before we proceed any further, hear me speak."])
ids = tok.encode("hear me speak, citizen")
print(ids, "->", tok.decode(ids))  # <start> first; "citizen" was seen, in lower case'''),
        new_markdown_cell('''\
Train the GPT, and an LSTM language model of the same size class on the same text and budget
(the recurrent baseline the Transformer replaced). `INPUTS()` with no data file means the bundled
Tiny Shakespeare.'''),
        new_code_cell('''\
gpt, lstm = TASKS.load("gpt"), TASKS.load("lstm-lm")
if SMOKE:  # tiny presets, 400 steps, a validation every 100
    smoke = ["train.max_steps=400", "train.eval_every=100"]
    gpt_cfg, lstm_cfg = build_config(gpt.CONFIG, "tiny", smoke), build_config(lstm.CONFIG, "tiny", smoke)
else:  # README command (1), and the LSTM's default
    gpt_cfg, lstm_cfg = build_config(gpt.CONFIG), build_config(lstm.CONFIG)
gpt_run, lstm_run = new_run_dir("gpt", root=RUNS), new_run_dir("lstm-lm", root=RUNS)
gpt_metrics = gpt.train(gpt_cfg, gpt.INPUTS(), gpt_run)
lstm_metrics = lstm.train(lstm_cfg, lstm.INPUTS(), lstm_run)
{"gpt perplexity": round(gpt_metrics["val_perplexity"], 2),
 "lstm perplexity": round(lstm_metrics["val_perplexity"], 2)}'''),
        new_code_cell('attnlab.curves([gpt_run, lstm_run], y="val_perplexity", labels=["DialogueGPT", "LSTM"])'),
        new_markdown_cell('''\
### Generation, step by step

The GPT continues a prompt one word at a time. **Look at**: the generation view. Each step shows
the word chosen, the candidates with their probabilities, and the row of attention the position
that chose it paid to every earlier word (causal: never a later one). The head view shows one
head's lines between words; the model view every layer and head at once. With the smoke budget
the model has seen a few hundred steps, so expect `<unk>`, punctuation and common words.'''),
        new_code_cell('''\
page = attnlab.explore(gpt_run, prompt="ROMEO :", generate=20, temperature=0.8, top_k=40, seed=0)
page.save(RUNS / "gpt-generation.html")  # the same page as one offline file
page'''),
        new_markdown_cell('''\
A model in memory works the same way, given its tokenizer: here the trained GPT, loaded from its
run, reading a line of Hamlet. Which words does the last position attend to?'''),
        new_code_cell('''\
model, meta = gpt.load_model(gpt_run)
tokenizer = MyTokenizer.from_dict(meta["tokenizer"])
attnlab.explore(model, "to be , or not to be : that is the question", tokenizer=tokenizer)'''),
    ]


def self_attention_sentiment() -> list:
    return [
        new_code_cell(SETUP),
        new_code_cell(IMPORTS),
        new_markdown_cell("""\
# 1. Self-attention, and sentiment from word vectors to attention

This notebook builds self-attention from its formula, checks it against PyTorch, then classifies
movie reviews three ways with attnlab's text task: the average of the words' vectors with
**logistic regression**, the same average through a small **feed-forward network**, and an
**attention classifier** that first lets every word look at every other. Last, it shows what the
attention classifier attends to in a review of your own.

Run all cells. `BUDGET = "smoke"` (the first cell) trains on a few hundred generated reviews in
seconds; `"full"` trains the README's recipes on IMDB (minutes each on 2 CPU cores)."""),
        new_markdown_cell("""\
## 1. Self-attention by hand

For an input of `n` word vectors `x` (`n x e`): queries `Q = x W_Q`, keys `K = x W_K`, values
`V = x W_V`, then `softmax(Q K^T / sqrt(d_k)) V`. Row `i` of the softmax says how much word `i`
takes from each word. `attnlab.numpy_attention` is that formula in NumPy; below it is computed by
hand and by PyTorch's `scaled_dot_product_attention`, and the three agree."""),
        new_code_cell("""\
import numpy as np

rng = np.random.default_rng(0)
n, e, d_k = 5, 4, 3
x = rng.normal(size=(n, e))
W_Q, W_K, W_V = rng.normal(size=(e, d_k)), rng.normal(size=(e, d_k)), rng.normal(size=(e, e))

scores = (x @ W_Q) @ (x @ W_K).T / np.sqrt(d_k)  # (n, n)
weights = np.exp(scores - scores.max(1, keepdims=True))
weights /= weights.sum(1, keepdims=True)  # each row sums to 1
by_hand = weights @ (x @ W_V)  # (n, e)

ours = attnlab.numpy_attention(x, e, d_k, weights=(W_Q, W_K, W_V))
q, k, v = (torch.from_numpy(x @ W) for W in (W_Q, W_K, W_V))
torchs = torch.nn.functional.scaled_dot_product_attention(q[None], k[None], v[None])[0].numpy()
print(np.abs(ours - by_hand).max(), np.abs(torchs - by_hand).max())  # both ~1e-16
weights.round(2)"""),
        new_markdown_cell("""\
## 2. The reviews and the word vectors

With the smoke budget the reviews are generated: short sentences of filler words with a few
positive or negative words mixed in, in the course's TSV format (`id<TAB>label<TAB>text`), and
50-d word vectors in GloVe's text format in which the sentiment words lean along one direction
(standing in for GloVe, whose vectors carry that direction from real text). The full budget
fetches IMDB (`attnlab data fetch imdb`) and GloVe's 50-d vectors (`attnlab data fetch glove`),
or uses the README's word2vec vectors when they are in `DATA/embeddings`."""),
        new_code_cell("""\
import random

POSITIVE = "great wonderful superb loved amazing brilliant moving funny".split()
NEGATIVE = "awful boring terrible hated worst dull waste poor".split()
FILLER = "the movie was a film plot actor and it i this not story scene really very".split()


def write_reviews(root: Path, sizes: dict[str, int], seed: int = 0) -> dict[str, Path]:
    \"\"\"The course's TSV files root/NAME.tsv, labels alternating neg/pos.\"\"\"
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, count in sizes.items():
        lines = []
        for i in range(count):
            positive = i % 2 == 1
            words = [rng.choice(POSITIVE if positive else NEGATIVE) if rng.random() < 0.2 else rng.choice(FILLER)
                     for _ in range(rng.randint(5, 30))]
            lines.append(f"{name}{i}\\t{'pos' if positive else 'neg'}\\t{' '.join(words)} .\\n")
        files[name] = root / f"{name}.tsv"
        files[name].write_text("".join(lines))
    return files


def write_vectors(path: Path, dim: int = 50, seed: int = 0) -> Path:
    \"\"\"GloVe-format vectors: noise, plus +1 (positive words) or -1 (negative) along the first axis.\"\"\"
    rng = np.random.default_rng(seed)
    rows = []
    for word in POSITIVE + NEGATIVE + FILLER + ["."]:
        vector = rng.normal(0, 0.5, dim)
        vector[0] += 1.0 if word in POSITIVE else -1.0 if word in NEGATIVE else 0.0
        rows.append(word + " " + " ".join(f"{v:.4f}" for v in vector))
    path.write_text("\\n".join(rows) + "\\n")
    return path


text = TASKS.load("text")
if SMOKE:
    files = write_reviews(Path("reviews"), {"train": 400, "dev": 100, "test": 100})
    text_inputs = text.INPUTS(train=files["train"], dev=files["dev"], test=files["test"],
                              embeddings=write_vectors(Path("reviews/vectors.txt")), workers=1)
else:
    from attnlab.data import glove, imdb

    word2vec = DATA / "embeddings" / "imdb-w2v-50d.txt"  # the README's vectors, where present
    vectors = word2vec if word2vec.is_file() else glove.fetch(DATA, vocab_size=50000)
    text_inputs = text.INPUTS(data_dir=imdb.fetch(DATA), embeddings=vectors)
text_inputs"""),
        new_markdown_cell("""\
## 3. Three classifiers

Each trains through the text task's `train`, as `attnlab train text --model NAME` does. The
averaging models see a review as one vector, the mean of its words' vectors, so word order and
context are lost. The attention classifier first replaces each word's vector by an
attention-weighted mix of the review's words, then averages: a word can take meaning from its
neighbours ("not" next to "good")."""),
        new_code_cell("""\
runs, results = {}, {}
for name in ("logreg", "ffnn", "attention"):
    if SMOKE:  # the tiny preset with this model, a few epochs
        cfg = build_config(text.CONFIG, "tiny", [f"model.name={name}", "train.epochs=8", "train.lr=1e-2"])
    else:  # the README's recipe of this model (README, "Sentiment")
        cfg = build_config(text.CONFIG, name)
    runs[name] = new_run_dir("text", name, root=RUNS)
    metrics = text.train(cfg, text_inputs, runs[name])
    results[name] = {"val_accuracy": round(metrics["val_accuracy"], 3),
                     "test_accuracy": round(metrics.get("test_accuracy", float("nan")), 3)}
results"""),
        new_code_cell('attnlab.curves(list(runs.values()), y="val_accuracy", labels=list(runs))'),
        new_markdown_cell("""\
## 4. What the attention classifier attends to

The explorer below reads one review with the trained attention classifier. **Look at**: the
prediction, and under it the attention each word *receives* (the mean of its column: the share
of each word that goes into the average the classifier reads). Sentiment words should receive
more than fillers. The head view draws every word's attention row: hover a word to see whom it
looks at."""),
        new_code_cell("""\
review = "the plot was dull and the actor was awful , but the film was really moving" if SMOKE else \\
    "The plot was thin and the acting wooden, but the ending was wonderful and moving."
attnlab.explore(runs["attention"], review)"""),
        new_markdown_cell("""\
The model in memory works too, given the vocabulary its embedding rows belong to (a checkpoint
keeps it in its `meta`). Try your own review here:"""),
        new_code_cell("""\
model, meta = text.load_model(runs["attention"])
attnlab.explore(model, "not boring at all , a great story", vocab=meta["vocab"])"""),
    ]


NOTEBOOKS = {"01-self-attention-sentiment.ipynb": self_attention_sentiment,
             "02-transformers-vit-gpt.ipynb": transformers_vit_gpt}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        made = cells()
        for i, cell in enumerate(made):
            cell.id = f"cell-{i:02d}"  # stable ids: a regenerated notebook differs only where its cells do
        nb = new_notebook(cells=made, metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"}})
        nbformat.validate(nb)
        nbformat.write(nb, HERE / name)
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
