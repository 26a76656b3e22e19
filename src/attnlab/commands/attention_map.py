"""``attnlab attention-map``: a trained ViT's class-token attention, beside and over validation images.

It draws Vision Transformers (task ``vit``). For the attention of every other model -- the
language models, the sentiment classifiers, the toy model -- use ``attnlab explore``, which
writes an interactive page for any of them (ViTs included).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from attnlab.errors import AttnlabError
from attnlab.options import require_at_least

if TYPE_CHECKING:
    import torch

HELP = ("draw a trained Vision Transformer's class-token attention (or attention rollout) beside and over "
        "validation images, as a PNG; for any other model's attention use `attnlab explore`")
EXAMPLE = """\
attnlab attention-map --checkpoint runs/vit --num-images 10 --out maps.png --data-dir data
attnlab attention-map --checkpoint runs/vit --misclassified --num-images 10 --data-dir data
attnlab attention-map --checkpoint runs/vit --class cat --images 0 3 5 --data-dir data"""
DEFAULT_NAME = "attention_maps.png"
MAX_SIDE = 2**16  # pixels a side of the PNG: past this, viewers and memory suffer long before matplotlib's 2**23


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="run directory of `attnlab train vit` (its best checkpoint) or a checkpoint directory")
    parser.add_argument("--num-images", type=int, default=10, help="validation images to draw (default 10)")
    parser.add_argument("--out", default=DEFAULT_NAME, metavar="PATH",
                        help=f"PNG to write (default {DEFAULT_NAME}); an existing folder, or a path ending in '/', "
                             f"gets {DEFAULT_NAME} inside it")
    parser.add_argument("--rollout", action="store_true",
                        help="attention rollout through the layers instead of the head/layer average")
    parser.add_argument("--data-dir", type=Path, default=Path("data"),
                        help="the data the model was trained on (CIFAR-10 folder/archive or image folder)")
    parser.add_argument("--offset", type=int, default=0,
                        help="skip this many validation images first (default 0)")
    parser.add_argument("--cols", type=int, default=5, help="image pairs per row, at least 1 (default 5)")
    parser.add_argument("--images", type=int, nargs="+", default=None, metavar="INDEX",
                        help="these validation images (positions among the selected ones; instead of --offset)")
    parser.add_argument("--class", dest="only_class", default=None, metavar="NAME",
                        help="only validation images of this true class (e.g. cat)")
    parser.add_argument("--misclassified", action="store_true", help="only the validation images the model gets wrong")


def _out_path(out: str) -> Path:
    """The PNG that ``--out`` names: inside it when it is a folder (existing, or written with a final '/')."""
    path = Path(out)
    if out.endswith(("/", os.sep)) or path.is_dir():
        return path / DEFAULT_NAME
    return path


def run(args: argparse.Namespace) -> int:
    require_at_least(args, 1, "num-images")
    require_at_least(args, 1, "cols", why="panels per row")
    require_at_least(args, 0, "offset", why="validation images to skip")
    require_at_least(args, 0, "images", why="counted from 0")
    import torch  # here, not at the top: `attention-map --help` answers without it

    from attnlab.config import config_from_dict
    from attnlab.data.augment import normalize
    from attnlab.data.images import validation_images
    from attnlab.tasks import TASKS, load_trained
    from attnlab.viz.attention_map import attention_rollout, cls_attention, figure_pixels, save_grid, upsample

    width, height = figure_pixels(args.num_images, args.cols)
    if max(width, height) > MAX_SIDE:
        raise AttnlabError(f"{args.num_images} panels, {args.cols} per row, make a {width}x{height}-pixel PNG, more "
                           f"than {MAX_SIDE} a side; lower --num-images (and draw the next ones with --offset) "
                           "or change --cols")
    out = _out_path(args.out)
    _, model, meta = load_trained(args.checkpoint, tasks=("vit",),
                                  what="a Vision Transformer",
                                  hint="for another model's attention use `attnlab explore --checkpoint RUN`")
    cfg = config_from_dict(TASKS.load("vit").CONFIG, meta["config"])  # the run's image size and split
    val = validation_images(args.data_dir, image_size=cfg.model.image_size, val_size=cfg.data.val_size,
                            seed=cfg.data.split_seed)
    classes = meta.get("classes") or list(val.classes)
    pool = _select(model, val.images, val.labels, classes, args)  # positions in the validation split
    if args.images is not None:
        bad = [i for i in args.images if not 0 <= i < len(pool)]
        if bad:
            raise AttnlabError(f"--images {bad[0]} is out of range: {len(pool)} validation images are selected")
        chosen = pool[torch.tensor(args.images, dtype=torch.long)]
    else:
        stop = args.offset + args.num_images
        if stop > len(pool):
            raise AttnlabError(f"--offset {args.offset} + --num-images {args.num_images} asks for selected validation "
                               f"images up to {stop}, but {len(pool)} are selected; lower --num-images/--offset")
        chosen = pool[args.offset:stop]
    images, labels = val.images[chosen], val.labels[chosen]  # (n, 3, H, W) uint8
    with torch.no_grad():
        attended = model.attend(normalize(images))
    preds = attended.output.argmax(-1)
    scores = (attention_rollout if args.rollout else cls_attention)(attended.attentions)  # (n, N)
    maps = upsample(scores, attended.grid, (images.shape[-2], images.shape[-1]))  # (n, H, W)
    truths = list(val.classes) if len(classes) != len(val.classes) else classes  # a pretrained model's own classes
    titles = [f"true: {truths[t]}\npred: {classes[p]}" for t, p in zip(labels.tolist(), preds.tolist())]
    colors = ["green" if t == p else "red" for t, p in zip(labels.tolist(), preds.tolist())]
    what = "attention rollout" if args.rollout else "class-token attention, mean over heads and layers"
    try:
        save_grid(images, maps, titles, out, colors=colors, cols=args.cols, suptitle=what)
    except OSError as e:
        raise AttnlabError(f"cannot write --out {out}: {e.strerror or e}; pass a writable path") from None
    correct = int((preds == labels).sum())
    print(f"wrote {out} ({len(labels)} validation images, {correct} classified correctly; {what})",
          file=sys.stderr)
    return 0


def _select(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, classes: list[str],
            args: argparse.Namespace) -> torch.Tensor:
    """Positions of the validation images to draw from: all, one true class, and/or the misclassified."""
    import torch

    from attnlab.data.augment import normalize

    keep = torch.ones(len(labels), dtype=torch.bool)
    if args.only_class is not None:
        if args.only_class not in classes:
            raise AttnlabError(f"--class {args.only_class!r} is not a class of this model; choose from "
                               f"{', '.join(classes)}")
        keep &= labels == classes.index(args.only_class)
    if args.misclassified:
        with torch.no_grad():
            preds = torch.cat([model(normalize(images[i:i + 500])).argmax(-1) for i in range(0, len(labels), 500)])
        keep &= preds != labels
    positions = torch.nonzero(keep).flatten()
    if len(positions) == 0:
        raise AttnlabError("no validation image matches --class/--misclassified; widen the selection")
    return positions
