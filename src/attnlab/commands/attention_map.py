"""``attnlab attention-map``: a trained ViT's class-token attention, overlaid on validation images."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from attnlab.errors import AttnlabError

HELP = "draw a trained ViT's class-token attention (or attention rollout) over validation images"
EXAMPLE = "attnlab attention-map --checkpoint runs/vit --num-images 10 --out maps.png --data-dir data"
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
    parser.add_argument("--cols", type=int, default=5, help="panels per row, at least 1 (default 5)")


def _out_path(out: str) -> Path:
    """The PNG that ``--out`` names: inside it when it is a folder (existing, or written with a final '/')."""
    path = Path(out)
    if out.endswith(("/", os.sep)) or path.is_dir():
        return path / DEFAULT_NAME
    return path


def run(args: argparse.Namespace) -> int:
    from attnlab.data.augment import normalize
    from attnlab.data.images import load_images, split
    from attnlab.tasks import load_trained
    from attnlab.viz.attention_map import attention_rollout, cls_attention, figure_pixels, save_grid, upsample

    if args.num_images < 1:
        raise AttnlabError(f"--num-images must be >= 1, got {args.num_images}")
    if args.cols < 1:
        raise AttnlabError(f"--cols (panels per row) must be >= 1, got {args.cols}")
    if args.offset < 0:
        raise AttnlabError(f"--offset (validation images to skip) must be >= 0, got {args.offset}")
    width, height = figure_pixels(args.num_images, args.cols)
    if max(width, height) > MAX_SIDE:
        raise AttnlabError(f"{args.num_images} panels, {args.cols} per row, make a {width}x{height}-pixel PNG, more "
                           f"than {MAX_SIDE} a side; lower --num-images (and draw the next ones with --offset) "
                           "or change --cols")
    out = _out_path(args.out)
    _, model, meta = load_trained(args.checkpoint, tasks=("vit",), what="a Vision Transformer")
    train_all, _ = load_images(args.data_dir, model.config.image_size)
    data = meta.get("data", {})
    _, val = split(train_all, data.get("val_size", 5000), data.get("split_seed", 0))
    stop = args.offset + args.num_images
    if stop > len(val.labels):
        raise AttnlabError(f"--offset {args.offset} + --num-images {args.num_images} asks for validation images up "
                           f"to {stop}, but the validation split has {len(val.labels)}; lower --num-images/--offset")
    images, labels = val.images[args.offset:stop], val.labels[args.offset:stop]  # (n, 3, H, W) uint8
    classes = meta.get("classes") or list(train_all.classes)
    with torch.no_grad():
        features, attentions = model.forward_features(normalize(images), need_weights=True)
        preds = model.forward_head(features).argmax(-1)
    scores = attention_rollout(attentions) if args.rollout else cls_attention(attentions)  # (n, N)
    size = (images.shape[-2], images.shape[-1])
    maps = upsample(scores, model.grid_for(size), size)  # (n, H, W)
    titles = [f"true: {classes[t]}\npred: {classes[p]}" for t, p in zip(labels.tolist(), preds.tolist())]
    colors = ["green" if t == p else "red" for t, p in zip(labels.tolist(), preds.tolist())]
    what = "attention rollout" if args.rollout else "class-token attention, mean over heads and layers"
    try:
        save_grid(images, maps, titles, out, colors=colors, cols=args.cols, suptitle=what)
    except OSError as e:
        raise AttnlabError(f"cannot write --out {out}: {e.strerror or e}; pass a writable path") from None
    correct = int((preds == labels).sum())
    print(f"wrote {out} ({args.num_images} validation images, {correct} classified correctly; {what})",
          file=sys.stderr)
    return 0
