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

# Where attnlab comes from when this kernel lacks it (Colab): set ATTNLAB_SOURCE to a clone's folder
# ("/content/attnlab[notebook]") or a git URL ("attnlab[notebook] @ git+https://github.com/OWNER/attnlab").
# No default: a bare package name could install somebody else's package of that name.
ATTNLAB_SOURCE = os.environ.get("ATTNLAB_SOURCE")
if importlib.util.find_spec("attnlab") is None:  # Colab, or a kernel without attnlab: install it first
    if not ATTNLAB_SOURCE:
        raise ModuleNotFoundError("attnlab is not installed in this kernel: set ATTNLAB_SOURCE to a clone's "
                                  "folder or a git URL of attnlab (see this cell), or run `pip install -e "
                                  "'.[notebook]'` in a clone, then run this cell again")
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", ATTNLAB_SOURCE])'''

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


# Notebooks 1 and 3: the reviews and word vectors (generated at the smoke budget, IMDB and GloVe at full).
REVIEWS = """\
import random

import numpy as np

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
text_inputs"""


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
        new_code_cell(REVIEWS),
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


def transformer_vs_rnn() -> list:
    return [
        new_code_cell(SETUP),
        new_code_cell(IMPORTS),
        new_markdown_cell("""\
# 3. Self-attention, the Transformer block, and a Transformer against an RNN on reviews

1. Multi-head self-attention and the Transformer block, as attnlab's modules, checked against the
   formula.
2. The same sentiment task as notebook 1, read by a Transformer and by a bidirectional LSTM.
3. A small sweep over the Transformer's heads and learning rate, and the runs in TensorBoard.

`BUDGET = "smoke"` (the first cell) trains on generated reviews in seconds; `"full"` runs the
README's recipes on IMDB."""),
        new_markdown_cell("""\
## 1. Multi-head self-attention and the Transformer block

`attnlab.MultiHeadedAttention(dim, num_heads, head_dim)` projects the input to queries, keys and
values for every head at once, runs `softmax(Q K^T / sqrt(head_dim)) V` per head, and mixes the
heads' outputs with `W_O`. Below, its output is rebuilt from its own weights by hand.
`attnlab.TransformerBlock` is the post-norm block of "Attention is all you need":
`x = norm1(x + attn(x)); x = norm2(x + mlp(x))`."""),
        new_code_cell("""\
torch.manual_seed(0)
B, T, dim, heads, head_dim = 2, 5, 16, 4, 4
x = torch.randn(B, T, dim)
mha = attnlab.MultiHeadedAttention(dim, heads, head_dim).eval()
out, weights = mha(x, need_weights=True)  # (B, T, dim), (B, heads, T, T)

# by hand, from the module's own weights
for name, param in mha.named_parameters():
    print(f"{name:12s} {tuple(param.shape)}")"""),
        new_code_cell("""\
qkv = mha.qkv(x).view(B, T, 3, heads, head_dim)  # (B, T, 3, H, hd)
q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, hd)
w = torch.softmax(q @ k.transpose(-1, -2) / head_dim**0.5, dim=-1)  # (B, H, T, T)
by_hand = mha.W_O((w @ v).transpose(1, 2).reshape(B, T, heads * head_dim))  # (B, T, dim)
float((by_hand - out).abs().max()), float((w - weights).abs().max())"""),
        new_code_cell("""\
block = attnlab.TransformerBlock(dim=dim, num_heads=heads, mlp_dim=4 * dim).eval()
y, block_weights = block(x, need_weights=True)
print(tuple(y.shape), tuple(block_weights.shape))  # the shape is kept: blocks stack
# post-norm: each position's features have mean ~0 and standard deviation ~1
print([round(float(v), 3) for v in (y.mean(-1).abs().max(), y.std(-1).mean())])"""),
        new_markdown_cell("""\
## 2. The reviews, as in notebook 1"""),
        new_code_cell(REVIEWS),
        new_markdown_cell("""\
## 3. A Transformer against an RNN

Both read the review's tokens in order (the Transformer through learned positions, the LSTM
through its recurrence, in both directions), both start their embeddings from the word vectors.
**Look at** the accuracies, the time each took, and the curves below."""),
        new_code_cell("""\
runs, results = {}, {}
for name in ("transformer", "rnn"):
    if SMOKE:  # the tiny preset with this model, a few epochs
        cfg = build_config(text.CONFIG, "tiny", [f"model.name={name}", "train.epochs=6", "train.lr=5e-3"])
    else:  # the README's recipe of this model (README, "Sentiment")
        cfg = build_config(text.CONFIG, name)
    runs[name] = new_run_dir("text", name, root=RUNS)
    metrics = text.train(cfg, text_inputs, runs[name])
    results[name] = {k: round(metrics[k], 3) for k in ("val_accuracy", "test_accuracy", "train_seconds")}
results"""),
        new_code_cell('attnlab.curves(list(runs.values()), y="val_accuracy", x="train_seconds", labels=list(runs))'),
        new_markdown_cell("""\
What does the Transformer attend to? Every layer and head, for one review (the model view shows
them all at once):"""),
        new_code_cell("""\
review = "not boring at all , the story was really moving and the actor superb" if SMOKE else \\
    "Not boring at all: the story was moving and the lead superb, though the ending dragged."
attnlab.explore(runs["transformer"], review)"""),
        new_markdown_cell("""\
## 4. A small sweep

A sweep is a loop over configs, one run directory each (`attnlab sweep text --grid ...` does the
same from the command line and writes a table). **Look at** how much the learning rate matters
next to the number of heads."""),
        new_code_cell("""\
sweep = []
for heads in (1, 2, 4):
    for lr in (1e-3, 5e-3):
        if SMOKE:
            cfg = build_config(text.CONFIG, "tiny", ["model.name=transformer", "train.epochs=4",
                                                     f"model.num_heads={heads}", f"train.lr={lr}"])
        else:
            cfg = build_config(text.CONFIG, "transformer", [f"model.num_heads={heads}", f"train.lr={lr}"])
        run = new_run_dir("text", f"sweep-h{heads}-lr{lr:g}", root=RUNS)
        metrics = text.train(cfg, text_inputs, run, progress=False)
        sweep.append({"num_heads": heads, "lr": lr, "val_accuracy": round(metrics["val_accuracy"], 3)})
sweep"""),
        new_markdown_cell("""\
Every run also wrote TensorBoard logs (`RUN/tb/`). The cell below shows them inline with the full
budget (it starts a TensorBoard server); at any budget, `tensorboard --logdir runs` in a terminal
shows the same."""),
        new_code_cell("""\
if not SMOKE:
    get_ipython().run_line_magic("load_ext", "tensorboard")
    get_ipython().run_line_magic("tensorboard", f"--logdir {RUNS}")
sorted(str(p.relative_to(RUNS)) for p in RUNS.glob("*/tb"))"""),
    ]


def rnn_bptt_lowrank() -> list:
    return [
        new_code_cell(SETUP),
        new_code_cell(IMPORTS),
        new_markdown_cell("""\
# 4. From RNNs to attention: gradients through time, cost, low rank, masks and scaling

No big training here: small computations you can check by hand.

1. Backpropagation through time written out for an Elman RNN, against autograd.
2. Vanishing and exploding gradients: how far back an RNN's output still feels its first input.
3. Attention's O(n²) cost, measured.
4. Low-rank attention: a truncated SVD of the attention matrix, and Linformer's projected keys.
5. Masks: causal and padding, and what they do to the weights.
6. Why the scores are divided by sqrt(d_k).
7. A tiny Transformer trained in seconds, explored inline.

`BUDGET` (the first cell) only changes the sizes: `"smoke"` keeps every cell to a second or so."""),
        new_markdown_cell("""\
## 1. Backpropagation through time, by hand

`attnlab.lab.rnn.ElmanRNN` is the course's RNN: `z_t = W_hx x_t + W_hh h_{t-1}`, `h_t = psi(z_t)`,
`y_t = softmax(W_yh h_t)`, and the loss `J` sums each step's cross-entropy. Its `bptt` computes
the gradients with the running delta `dJ/dh_i = dJ_i/dh_i + W_hh^T (psi'(z_{i+1}) * dJ/dh_{i+1})`,
no autograd anywhere. They equal autograd's to float64 precision."""),
        new_code_cell("""\
from attnlab.lab.rnn import ElmanRNN

torch.manual_seed(0)
rnn = ElmanRNN(activation="tanh", dtype=torch.float64)
xs, ys = torch.randn(6, 3, dtype=torch.float64), torch.randint(0, 2, (6,))
by_hand = rnn.bptt(xs, ys)
rnn.zero_grad()
rnn.loss(xs, ys).backward()
{name: float((getattr(by_hand, "d" + name) - getattr(rnn, name).grad).abs().max())
 for name in ("W_hh", "W_hx", "W_yh")}"""),
        new_markdown_cell("""\
`dJt_dh[t, i]` is how the loss at step `t` depends on the state at step `i <= t`. **Look at** how
it shrinks as `i` moves back from `t`: the gradient reaching early states is small."""),
        new_code_cell("""\
import matplotlib.pyplot as plt

norms = by_hand.dJt_dh.norm(dim=-1)  # (T, T): |dJ_t / dh_i|
fig, ax = plt.subplots(figsize=(4, 3.5))
shown = ax.imshow(norms.numpy(), cmap="viridis")
ax.set(xlabel="state i", ylabel="loss at step t", title="|dJ_t / dh_i| (zero for i > t)")
fig.colorbar(shown)
plt.show()"""),
        new_markdown_cell("""\
## 2. Vanishing and exploding gradients

For a linear RNN `h_T = sum_t W_hh^(T-t) W_hx x_t`, so the first input's influence on the last
output is `W_yh W_hh^(T-1) W_hx`: it scales like `rho^(T-1)`, where `rho` is the spectral radius
of `W_hh`. Below, autograd measures `|d o_T / d x_1|` for recurrent matrices of chosen radii.
**Look at**: straight lines on the log scale, falling for `rho < 1`, rising for `rho > 1`.
Attention has no such chain: every position reaches every other in one step."""),
        new_code_cell("""\
steps = range(1, 31 if SMOKE else 61)
fig, ax = plt.subplots(figsize=(5, 3.5))
for rho in (0.5, 0.9, 1.0, 1.1):
    torch.manual_seed(0)
    rnn = ElmanRNN(activation="identity", dtype=torch.float64)
    with torch.no_grad():  # rescale W_hh to spectral radius rho
        rnn.W_hh *= rho / torch.linalg.eigvals(rnn.W_hh).abs().max()
    influence = []
    for T in steps:
        xs = torch.randn(T, 3, dtype=torch.float64, requires_grad=True)
        _, hs = rnn.states(xs)
        out = hs[-1] @ rnn.W_yh.T  # o_T, before the softmax
        rows = [torch.autograd.grad(out[j], xs, retain_graph=True)[0][0] for j in range(out.numel())]
        influence.append(float(torch.stack(rows).norm()))
    ax.semilogy(list(steps), influence, label=f"rho = {rho}")
ax.set(xlabel="sequence length T", ylabel="|d o_T / d x_1|", title="the first input's influence on the last output")
ax.legend()
plt.show()"""),
        new_markdown_cell("""\
## 3. The O(n²) cost of attention

Every query scores every key: `n` queries times `n` keys. Doubling the length quadruples the
score matrix, and past a few hundred tokens the time grows the same way. **Look at** the slope
of the log-log line: near 2 at long lengths (at short ones, fixed overheads flatten it)."""),
        new_code_cell("""\
import time

import numpy as np

from attnlab import scaled_dot_product_attention

lengths = [128, 256, 512, 1024] if SMOKE else [128, 256, 512, 1024, 2048, 4096]
seconds = []
for n in lengths:
    q = k = v = torch.randn(1, 2, n, 32)
    scaled_dot_product_attention(q, k, v)  # warm up
    start = time.perf_counter()
    for _ in range(3):
        scaled_dot_product_attention(q, k, v)
    seconds.append((time.perf_counter() - start) / 3)
slope = np.polyfit(np.log(lengths[-3:]), np.log(seconds[-3:]), 1)[0]
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.loglog(lengths, seconds, "o-")
ax.minorticks_off()
ax.set_xticks(lengths, labels=[str(n) for n in lengths])
ax.set(xlabel="sequence length n", ylabel="seconds per call", title=f"attention time; slope {slope:.2f} at the end")
plt.show()"""),
        new_markdown_cell("""\
## 4. Low-rank attention

If the `n x n` attention matrix is close to a matrix of rank `k`, it can be stored and applied
in `O(nk)`. `attnlab.svd_attention` keeps the top `k` singular values of the exact matrix (the
best rank-`k` approximation, for reference); Linformer (`attnlab.LinformerAttention`) gets there
without forming it, by projecting the `n` keys and values down to `k` learned rows. **Look at**
how fast the SVD's error falls with `k` for smooth attention (queries and keys that vary slowly
along the sequence) compared with random attention."""),
        new_code_cell("""\
from attnlab import svd_attention

n, d = 128, 16
torch.manual_seed(0)
random_qkv = [torch.randn(n, d) for _ in range(3)]
walk = torch.cumsum(torch.randn(n, d) * 0.3, dim=0)  # slowly varying along the sequence
smooth_qkv = [walk, walk + 0.1 * torch.randn(n, d), torch.randn(n, d)]
ranks = [1, 2, 4, 8, 16, 32, 64]
fig, ax = plt.subplots(figsize=(5, 3.5))
for name, (q, k, v) in (("random", random_qkv), ("smooth", smooth_qkv)):
    exact, _ = scaled_dot_product_attention(q, k, v)
    errors = [float((svd_attention(q, k, v, r)[0] - exact).norm() / exact.norm()) for r in ranks]
    ax.semilogy(ranks, errors, "o-", label=name)
ax.set(xlabel="rank k", ylabel="relative error of the output", title="truncated-SVD attention")
ax.legend()
plt.show()

linformer = attnlab.LinformerAttention(dim=32, num_heads=2, seq_len=n, k=16)
out, weights = linformer(torch.randn(1, n, 32), need_weights=True)
print("Linformer:", tuple(out.shape), "output;", tuple(weights.shape), "weights over k = 16 projected keys")"""),
        new_markdown_cell("""\
## 5. Masks

One convention everywhere in attnlab: a bool mask, `True` = *may attend*. A causal mask keeps a
language model's position `i` from seeing later tokens; a padding mask keeps every query off the
padding of a shorter sequence in the batch. **Look at** the zeros: above the diagonal, and in the
last two columns of the padded row."""),
        new_code_cell("""\
from attnlab import causal_mask, combine_masks, padding_mask

T = 5
q = k = v = torch.randn(2, 1, T, 4)  # (B, H, T, d): two sequences, one head
real = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])  # the second has 3 tokens and 2 of padding
mask = combine_masks(causal_mask(T), padding_mask(real))  # (B, 1, T, T)
_, weights = scaled_dot_product_attention(q, k, v, mask)
weights[1, 0].round(decimals=2)"""),
        new_markdown_cell("""\
## 6. Why divide by sqrt(d_k)?

For random queries and keys with unit-variance entries, `q . k` sums `d_k` products, so its
variance is `d_k`. Unscaled, wide heads give scores so spread out that the softmax puts almost
all weight on one key and its gradient vanishes. Dividing by `sqrt(d_k)` keeps the scores at
unit variance whatever the width. **Look at** the largest weight per row: near 1 without the
scaling at large `d_k`, moderate with it."""),
        new_code_cell("""\
rows = {}
for d_k in (4, 16, 64, 256):
    q, k = torch.randn(1000, d_k), torch.randn(32, d_k)
    scores = q @ k.T  # (1000, 32)
    rows[d_k] = {"var(q.k)": round(float(scores.var()), 1),
                 "max weight, unscaled": round(float(torch.softmax(scores, -1).max(-1).values.mean()), 3),
                 "max weight, scaled": round(float(torch.softmax(scores / d_k**0.5, -1).max(-1).values.mean()), 3)}
rows"""),
        new_markdown_cell("""\
## 7. A tiny Transformer, explored

The `toy` task: sequences of tokens 1 to 8, and the class is the most frequent token. A 2-layer
Transformer learns it in seconds. **Look at** the head view: to count, the heads attend from each
token to the other copies of the same token."""),
        new_code_cell("""\
toy = TASKS.load("toy")
toy_cfg = build_config(toy.CONFIG, "tiny", ["model.num_layers=2", "train.epochs=3" if SMOKE else "train.epochs=20"])
toy_run = new_run_dir("toy", root=RUNS)
toy_metrics = toy.train(toy_cfg, toy.INPUTS(), toy_run)
print({k: round(v, 3) for k, v in toy_metrics.items() if k.startswith("val_")})
attnlab.explore(toy_run, "3 1 4 1 5 3 3 2 3")"""),
    ]


NOTEBOOKS = {"01-self-attention-sentiment.ipynb": self_attention_sentiment,
             "02-transformers-vit-gpt.ipynb": transformers_vit_gpt,
             "03-transformer-vs-rnn.ipynb": transformer_vs_rnn,
             "04-rnn-bptt-lowrank-attention.ipynb": rnn_bptt_lowrank}


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
