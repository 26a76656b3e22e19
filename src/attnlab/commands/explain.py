"""``attnlab explain``: where a sentiment model's attention goes, as a heatmap (PNG) and HTML.

The weights are the last layer's from the model's ``attend``, averaged over its heads (the
``attention`` model has one layer of one head, the ``transformer`` one per block). The PNG shows
the token-by-token matrix (row i = how token i spreads its attention); the HTML colours each token by the attention it
*receives* (the mean of its column over all tokens), next to the predicted label.
"""

from __future__ import annotations

import argparse
import html
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from attnlab.commands import require_utf8
from attnlab.errors import AttnlabError
from attnlab.files import save_figure, write_atomic

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

HELP = "draw a sentiment model's attention over a review: per-token heatmap as PNG and HTML"
EXAMPLE = 'attnlab explain --checkpoint runs/text-attention "Not bad at all, I loved it." --out explain/'
MAX_DRAWN = 80  # tokens drawn in the PNG matrix (the HTML shows them all)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="run directory of `attnlab train text --model attention|transformer`")
    parser.add_argument("text", metavar="TEXT", help="the review to explain")
    parser.add_argument("--out", type=Path, default=Path("explain"),
                        help="output folder for attention.png and attention.html (default ./explain)")


def _figure(weights: torch.Tensor, tokens: list[str], title: str) -> Figure:
    """The token-by-token heatmap with its labelled colour bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(len(tokens), MAX_DRAWN)
    w = weights[:n, :n].numpy()
    size = max(4.0, 0.18 * n + 2.0)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(w, cmap="viridis", aspect="equal")
    ax.set_xticks(range(n), tokens[:n], rotation=90, fontsize=7)
    ax.set_yticks(range(n), tokens[:n], fontsize=7)
    ax.set_xlabel("attended token (key)")
    ax.set_ylabel("attending token (query)")
    suffix = f" (first {n} of {len(tokens)} tokens)" if n < len(tokens) else ""
    ax.set_title(title + suffix, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    return fig


def _png(weights: torch.Tensor, tokens: list[str], title: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        # A character the font lacks (an emoji) is drawn as a box; matplotlib warns once per glyph.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)
        fig = _figure(weights, tokens, title)
        try:
            fig.tight_layout()
            save_figure(fig, path, dpi=110)
        finally:
            plt.close(fig)


def _html(received: torch.Tensor, tokens: list[str], title: str, path: Path) -> None:
    top = float(received.max()) if len(received) else 1.0
    spans = []
    for tok, r in zip(tokens, received.tolist()):
        alpha = r / top if top > 0 else 0.0
        spans.append(f'<span title="{r:.4f}" style="background: rgba(255, 120, 0, {alpha:.3f}); '
                     f'padding: 1px 2px; margin: 1px; border-radius: 3px">{html.escape(tok)}</span>')
    write_atomic(
        path,
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>attnlab explain</title></head>\n"
        "<body style='font-family: sans-serif; max-width: 60em; line-height: 2'>\n"
        f"<h3>{html.escape(title)}</h3>\n<p>Each token is shaded by the attention it receives "
        "(mean over all tokens; hover for the value).</p>\n<p>" + " ".join(spans) + "</p>\n</body></html>\n",
    )


def run(args: argparse.Namespace) -> int:
    import sys

    import torch  # here, not at the top: `explain --help` answers without it

    from attnlab.tasks import load_reader, load_trained

    task, model, meta = load_trained(args.checkpoint, tasks=("text",), what="a sentiment classifier")
    reader = load_reader(task, model, meta, checkpoint=args.checkpoint)
    require_utf8(args.text, "the review")
    encoded = reader.text(args.text, reader.max_len)
    for note in encoded.notes:
        print(f"note: {note}", file=sys.stderr)
    with torch.no_grad():
        attended = model.attend(*encoded.inputs)
    probs = torch.softmax(attended.output.float(), -1)[0]
    labels = reader.labels
    k = int(probs.argmax())
    tokens = encoded.tokens
    n = len(tokens)
    w = attended.attentions[-1][0, :, :n, :n].float().mean(0)  # (T, T): last layer, heads averaged; row = query
    received = attended.received()  # (T,): the column means of w
    title = f"{meta['config']['model']['name']}: {labels[k]} (p = {float(probs[k]):.3f})"
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        png, page = args.out / "attention.png", args.out / "attention.html"
        _png(w, tokens, title, png)
        _html(received, tokens, title, page)
    except OSError as e:
        raise AttnlabError(f"cannot write to --out {args.out}: {e}") from None
    print(f"{labels[k]}\t{float(probs[k]):.4f}")
    print(f"wrote {png} and {page}")
    return 0
