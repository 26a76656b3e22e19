"""``attnlab bench vit``: training images/s of our ViT vs Hugging Face ViT of identical size.

Both models get the same shapes (layers, width, heads, MLP width, patch, image size, classes:
the parameter counts are printed and must match), the same random batch, the same AdamW
settings and the same threads, in the same process. One timed step = forward + cross-entropy +
backward + optimizer step; ours is the plain ViT (no conv stem), Hugging Face's
``ViTForImageClassification`` runs with ``labels=`` and its fastest attention (``sdpa``).
Steps are timed in interleaved rounds and the medians compared (:mod:`attnlab.bench.compare`).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from attnlab.bench.compare import Contender, compare_training, transformers_or_error
from attnlab.options import require_at_least, require_divisible

HELP = ("training images/s of attnlab's ViT vs Hugging Face ViTForImageClassification of identical size "
        "(CPU, or a GPU with --device cuda)")
EXAMPLE = "attnlab bench vit --layers 6 --dim 192 --heads 3 --mlp-dim 384 --patch 4 --image-size 32 --batch 64"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layers", type=int, default=6, help="Transformer blocks (default 6)")
    parser.add_argument("--dim", type=int, default=192, help="token width (default 192)")
    parser.add_argument("--heads", type=int, default=3, help="attention heads (default 3)")
    parser.add_argument("--mlp-dim", type=int, default=384, help="feed-forward width (default 384)")
    parser.add_argument("--patch", type=int, default=4, help="patch side (default 4)")
    parser.add_argument("--image-size", type=int, default=32, help="image side (default 32, CIFAR-10)")
    parser.add_argument("--classes", type=int, default=10, help="classes (default 10)")
    parser.add_argument("--batch", type=int, default=64, help="images per step (default 64)")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per model (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                        help="cpu (default; fp32) or cuda (bf16 autocast for both models; peak GPU memory too)")


def _models(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.nn.Module]:
    from attnlab.models.vit import VisionTransformer, ViTConfig

    transformers = transformers_or_error("vit")
    ours = VisionTransformer(ViTConfig(image_size=args.image_size, patch_size=args.patch, num_classes=args.classes,
                                       dim=args.dim, num_layers=args.layers, num_heads=args.heads,
                                       head_dim=args.dim // args.heads, mlp_dim=args.mlp_dim))
    hf_cfg = transformers.ViTConfig(hidden_size=args.dim, num_hidden_layers=args.layers,
                                    num_attention_heads=args.heads, intermediate_size=args.mlp_dim,
                                    image_size=args.image_size, patch_size=args.patch, num_channels=3,
                                    num_labels=args.classes, hidden_dropout_prob=0.0,
                                    attention_probs_dropout_prob=0.0, qkv_bias=True)
    hf_cfg._attn_implementation = "sdpa"
    hf = transformers.ViTForImageClassification(hf_cfg)
    return ours, hf


def run(args: argparse.Namespace) -> int:
    require_at_least(args, 1, "layers", "dim", "heads", "mlp-dim", "patch", "image-size", "classes", "batch", "repeats")
    require_divisible(args, "dim", "heads")
    require_divisible(args, "image-size", "patch")
    from attnlab.device import bench_device

    device = bench_device(args.device)
    torch.manual_seed(args.seed)
    ours, hf = (m.to(device) for m in _models(args))
    images = torch.randn(args.batch, 3, args.image_size, args.image_size, device=device)  # (B, 3, H, W)
    labels = torch.randint(0, args.classes, (args.batch,), device=device)
    tokens = (args.image_size // args.patch) ** 2 + 1
    compare_training(
        Contender("attnlab ViT", ours, lambda: F.cross_entropy(ours(images).float(), labels)),
        Contender("HF ViTForImageClassification", hf, lambda: hf(pixel_values=images, labels=labels).loss),
        device=device, repeats=args.repeats, per_step=args.batch, unit="images", rate_format=",.1f", name_width=30,
        what=f"training step (forward + cross-entropy + backward + AdamW), batch {args.batch}, "
             f"{args.image_size}x{args.image_size} images, patch {args.patch} ({tokens} tokens), {args.layers} layers, "
             f"dim {args.dim}, {args.heads} heads, MLP {args.mlp_dim}")
    return 0
