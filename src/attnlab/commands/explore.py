"""``attnlab explore``: one self-contained HTML page to explore a trained model's attention.

Text models (gpt, text attention/transformer/bert, toy) get a head view, a model view, and either the
prediction (classifiers) or a step-through of the generation (``--prompt`` with ``--generate``);
a BERT reads a sentence pair (``--pair``) with filters A -> B, B -> A, A -> A, B -> B; a translation
run translates INPUT (greedy, or ``--beam N``) and shows its cross-attention (target x source), its
encoder's and decoder's self-attention and the decoding step by step; a ViT gets its images with the
attention drawn over them. ``--serve`` answers the same page for
inputs typed into a form, on 127.0.0.1 only. The page works offline: nothing is loaded from the
network.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from attnlab.commands import add_sampling_arguments, check_sampling, sampling_settings
from attnlab.errors import AttnlabError
from attnlab.options import require_at_least

HELP = """\
Write one self-contained HTML page (works offline) to explore a trained model's attention.
Text models (gpt; text --model attention|transformer; toy): a head view, a model view, and the
prediction (classifiers) or a step-through of the generation (--prompt with --generate N).
A BERT: a sentence pair with --pair TEXT ([CLS] INPUT [SEP] TEXT [SEP]) and filters A->B, B->A, ...
A translation run: INPUT translated (greedy, or --beam N), its cross-attention (an alignment
heatmap of target x source pieces, and head-view lines from each target piece to the source), the
encoder's and decoder's self-attention, and the decoding step by step.
A ViT (--images, --image-file, --image-dir): each image under the attention of a chosen layer and
head, a clicked patch, or attention rollout. --serve answers the page for inputs typed into a
form, on 127.0.0.1 only. Layers and heads are numbered from 0."""
EXAMPLE = """\
attnlab explore --checkpoint runs/gpt --prompt "ROMEO :" --generate 20 --out gpt.html
attnlab explore --checkpoint runs/text-transformer "Not bad at all, I loved it." --out review.html
attnlab explore --checkpoint runs/vit --images 0 5 7 --data-dir data --out vit.html
attnlab explore --checkpoint runs/toy "3 1 4 1 5 3 3" --out toy.html
attnlab explore --checkpoint runs/translate-transformer "I am cold." --out translate.html
attnlab explore --checkpoint runs/bert "the plot was thin" --pair "the actors were great" --out pair.html
attnlab explore --checkpoint runs/text-transformer "A good film." --compare "Not a good film." --out ab.html
attnlab explore --checkpoint runs/toy "3 1 4 1 5 3 3" --compare-checkpoint runs/toy-seed1 --out two-models.html
attnlab explore --checkpoint runs/gpt --serve 8000"""

BIG_PAGE_MB = 5  # above this, say how to make the page smaller


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="RUN",
                        help="run directory (its best checkpoint) or a checkpoint directory of a model with "
                             "attention: gpt, text (--model attention, transformer or bert), translate, vit or toy; "
                             "or a pretrained model (DIR in Hugging Face layout, hf:NAME)")
    parser.add_argument("text", nargs="?", metavar="INPUT",
                        help="the text to explore (toy: token ids separated by spaces)")
    parser.add_argument("--compare", default=None, metavar="TEXT",
                        help="a second text (a language model: a second prompt, with the same --generate), shown "
                             "beside INPUT with the same layer and head, and their difference A - B")
    parser.add_argument("--compare-checkpoint", default=None, metavar="RUN",
                        help="a second model of the same kind and shape: B is its reading of --compare, or of INPUT "
                             "when there is no --compare")
    parser.add_argument("--pair", default=None, metavar="TEXT",
                        help="a BERT classifier: the second sentence of a pair, read as [CLS] INPUT [SEP] TEXT [SEP] "
                             "with token types 0 and 1; the page filters A -> B, B -> A, A -> A, B -> B")
    parser.add_argument("--out", type=Path, default=None, help="the HTML page to write (default explore.html)")
    lm = parser.add_argument_group("language models")
    lm.add_argument("--prompt", default=None, help="text to continue (instead of INPUT)")
    lm.add_argument("--generate", type=int, default=0, metavar="N", help="tokens to generate after --prompt")
    add_sampling_arguments(lm)
    lm.add_argument("--show-top", type=int, default=5, metavar="K", help="candidates listed per step (default 5)")
    tr = parser.add_argument_group("translation models")
    tr.add_argument("--beam", type=int, default=1, metavar="N",
                    help="beam width of the translation shown (default 1: greedy)")
    tr.add_argument("--length-penalty", type=float, default=None, metavar="A",
                    help="beam search's length penalty (default: the run's decode.length_penalty)")
    vit = parser.add_argument_group("Vision Transformers")
    vit.add_argument("--images", type=int, nargs="+", default=None, metavar="I", help="test-set image indices")
    vit.add_argument("--image-file", type=Path, nargs="+", default=None, metavar="PATH",
                     help="PNG or JPEG files (resized to the model's size, with a note)")
    vit.add_argument("--image-dir", type=Path, default=None, metavar="DIR",
                     help="a folder of PNG/JPEG images (class sub-folders give the true labels)")
    vit.add_argument("--data-dir", type=Path, default=None,
                     help="the data set of --images (default: where the model was trained, else ./data)")
    view = parser.add_argument_group("what the page shows")
    view.add_argument("--layer", type=int, default=None, help="layer shown first, from 0 (default: the last)")
    view.add_argument("--head", type=int, default=None, help="head shown first, from 0 (default: 0; ViT: the mean)")
    view.add_argument("--max-layers", type=int, default=12, help="show at most this many layers, evenly spread "
                      "(default 12)")
    view.add_argument("--max-heads", type=int, default=12, help="show at most the first this-many heads (default 12)")
    view.add_argument("--max-tokens", type=int, default=None, help="the model reads at most this many tokens "
                      "(default: the model's own limit, its max_len, as `attnlab predict` reads; a language model's "
                      "page holds 1,024 tokens, prompt and generated, and past its context generation slides a "
                      "window as `attnlab generate` does)")
    view.add_argument("--max-images", type=int, default=16, help="at most this many images (default 16)")
    serve = parser.add_argument_group("local server")
    serve.add_argument("--serve", type=int, nargs="?", const=8000, default=None, metavar="PORT",
                       help="serve the page for inputs typed into a form on 127.0.0.1:PORT (default 8000)")
    serve.add_argument("--max-upload", type=int, default=4_000_000, metavar="BYTES",
                       help="--serve refuses a request larger than this (default 4,000,000)")


def check(args: argparse.Namespace) -> None:
    """Reject bad values before loading anything."""
    require_at_least(args, 0, "generate")
    check_sampling(args)
    require_at_least(args, 1, "beam", why="1 = greedy")
    require_at_least(args, 0, "length-penalty")
    require_at_least(args, 1, "show-top", "max-upload")
    require_at_least(args, 0, "layer", "head", "images", why="counted from 0")
    if args.serve is not None and not 0 <= args.serve < 65536:
        raise AttnlabError(f"--serve PORT must be between 0 and 65535, got {args.serve}")
    if args.text is not None and args.prompt is not None:
        raise AttnlabError("pass either INPUT or --prompt, not both")


def sampling(args: argparse.Namespace, meta: dict[str, Any]) -> Any:
    from attnlab.viz.explorer import Sampling

    temperature, top_k = sampling_settings(args, meta)
    return Sampling(temperature=temperature, top_k=top_k, seed=args.seed, show_top=args.show_top)


def request(args: argparse.Namespace) -> Any:
    """The command line's input as the explorer's one :class:`attnlab.viz.explorer.Request`."""
    from attnlab.viz.explorer import Request

    return Request(text=args.prompt if args.prompt is not None else args.text, generate=args.generate,
                   images=args.images, image_files=args.image_file, image_dir=args.image_dir,
                   layer=args.layer, head=args.head, compare=args.compare, pair=args.pair, beam=args.beam,
                   length_penalty=args.length_penalty)


def run(args: argparse.Namespace) -> int:
    from attnlab.viz.explorer import Explorer, Limits
    from attnlab.viz.explorer_page import write

    check(args)
    limits = Limits(max_layers=args.max_layers, max_heads=args.max_heads, max_tokens=args.max_tokens,
                    max_images=args.max_images)
    limits.check()
    explorer = Explorer.load(args.checkpoint, limits=limits)
    how = sampling(args, explorer.meta) if explorer.kind == "lm" else None
    if explorer.kind == "translation":  # decoding is --beam's; --show-top lists each step's candidates
        from attnlab.viz.explorer import Sampling

        how = Sampling(show_top=args.show_top)
    other = Explorer.load(args.compare_checkpoint, limits=limits) if args.compare_checkpoint else None
    data = explorer.answer(request(args), sampling=how, data_dir=args.data_dir, other=other)
    for note in data["notes"] if data else []:
        print(f"note: {note}", file=sys.stderr)
    if data is None and args.serve is None:
        wanted = {"image": "--images I ..., --image-file PATH or --image-dir DIR",
                  "lm": "a TEXT, or --prompt TEXT --generate N"}.get(explorer.kind, "a TEXT")
        raise AttnlabError(f"nothing to explore: pass {wanted} (or --serve to type inputs into a page)")
    if data is not None and (args.out is not None or args.serve is None):
        out = write(data, args.out or Path("explore.html"))
        size = out.stat().st_size / 1e6
        print(f"wrote {out} ({size:.2f} MB)", file=sys.stderr)
        if size > BIG_PAGE_MB:
            print(f"note: the page is over {BIG_PAGE_MB} MB; --max-layers, --max-heads or --max-tokens make it "
                  "smaller and faster to open", file=sys.stderr)
    if args.serve is not None:
        from attnlab.viz.explorer import data_dir_of
        from attnlab.viz.explorer_server import ExplorerApp, ServeOptions, serve

        data_dir = None
        if explorer.kind == "image":
            data_dir = str(args.data_dir or data_dir_of(explorer.meta))
        options = ServeOptions(max_upload_bytes=args.max_upload, generate=args.generate or 20, sampling=how,
                               data_dir=data_dir)
        serve(ExplorerApp(explorer, options, initial=data), args.serve)
    return 0
