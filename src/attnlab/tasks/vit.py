"""`attnlab train|eval vit`: a Vision Transformer on CIFAR-10 (or your own image folder).

The data set lives as one uint8 tensor on the training device and is augmented there
(`attnlab.data.augment`); a validation split is carved from the training images with a fixed
seed, validated every epoch, and the test set is scored once at the end with the best weights.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from attnlab.config import Count, Range, Rate, Seed, config_from_dict, config_to_dict
from attnlab.engine.config import TrainConfig
from attnlab.errors import AttnlabError
from attnlab.models.configs import ViTConfig
from attnlab.tasks import resumed_meta

if TYPE_CHECKING:  # the work imports torch and the image pipeline when it starts (a fast --help)
    from torch import Tensor, nn

    from attnlab.data.images import ImageSet
    from attnlab.losses import Stats
    from attnlab.models.vit import VisionTransformer
    from attnlab.pretrained.source import Source


@dataclass
class VitDataConfig:
    val_size: Count = 5000  # training images held out for validation
    split_seed: Seed = 0  # seed of the train/validation split
    crop_padding: Annotated[int, Range(ge=0, le=64)] = 4  # random-crop translation in pixels (0: off)
    flip: bool = True  # random horizontal flips
    trivial: bool = False  # TrivialAugment: one random photometric or geometric operation per image
    cutout: Annotated[int, Range(ge=0, le=1024)] = 0  # side of a random square zeroed per image (0: off)
    mixup: Annotated[float, Range(ge=0, le=10)] = 0.0  # Beta(alpha, alpha) of mixup (0: off)
    cutmix: Annotated[float, Range(ge=0, le=10)] = 0.0  # Beta(alpha, alpha) of cutmix (0: off); with both,
    # each batch picks one
    label_smoothing: Rate = 0.1  # cross-entropy label smoothing during training
    eval_batch_size: Count = 500


@dataclass
class VitTaskConfig:
    model: ViTConfig = field(default_factory=ViTConfig)
    data: VitDataConfig = field(default_factory=VitDataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(monitor="val_accuracy"))

    PRESETS: ClassVar[dict[str, dict]] = {
        # Seconds on a CPU, for tests: a 1-layer model on a handful of images.
        "tiny": {
            "model.dim": 32, "model.num_layers": 1, "model.num_heads": 2, "model.head_dim": 16,
            "model.mlp_dim": 64, "model.patch_size": 8, "data.val_size": 8, "data.eval_batch_size": 64,
            "train.epochs": 1, "train.batch_size": 16, "train.warmup_steps": 1, "train.log_every": 1,
        },
        # Sized for about 30 minutes on a 2-core CPU (README: the measured accuracy, time and command). A CCT-style
        # stem of three convolutions turns a 32x32 image into a 4x4 grid of 128-d tokens, which a
        # 4-layer Transformer reads: 17 tokens cost a third of the 65 of an 8x8 grid, which buys
        # about three times the epochs in the same time. A running average of the weights.
        "cifar10-cpu": {
            "model.stem_channels": (32, 64, 128), "model.patch_size": 1, "model.dim": 128,
            "model.num_layers": 4, "model.num_heads": 4, "model.head_dim": 32, "model.mlp_dim": 256,
            "model.head_hidden": 256,
            "train.epochs": 35, "train.batch_size": 128, "train.lr": 2e-3, "train.ema": 0.999,
            "train.weight_decay": 0.05, "train.warmup_steps": 350, "train.min_lr_ratio": 0.0,
            "train.precision": "fp32", "train.log_every": 50,
        },
        # Sized for minutes on one GPU (H200, README "On a GPU": 86.17 % after its 120 epochs in 413 s
        # compiled; 84.84 % when capped at 5 minutes): an 8x8 grid of 256-d tokens, 7 layers, TrivialAugment and
        # cutmix on the GPU, stochastic depth, a running average of the weights, bf16 autocast.
        "cifar10-gpu": {
            "model.stem_channels": (64, 128), "model.patch_size": 1, "model.dim": 256,
            "model.num_layers": 7, "model.num_heads": 4, "model.head_dim": 64, "model.mlp_dim": 512,
            "model.head_hidden": 512, "model.drop_path": 0.1, "data.trivial": True, "data.cutmix": 1.0,
            "train.epochs": 120, "train.batch_size": 512, "train.lr": 2e-3, "train.ema": 0.9995,
            "train.weight_decay": 0.05, "train.warmup_steps": 440, "train.min_lr_ratio": 0.0,
            "train.precision": "auto", "train.log_every": 50,
        },
    }
    DEFAULT_PRESET: ClassVar[str] = "cifar10-cpu"
    GPU_PRESETS: ClassVar[dict[str, str]] = {"cifar10-gpu": "cifar10-cpu"}  # 24x slower on a CPU (README)

    def check(self) -> None:
        """Rules across sections (run by :func:`attnlab.config.validate`)."""
        if self.data.cutout > self.model.image_size:
            raise AttnlabError(f"data.cutout={self.data.cutout} is larger than the {self.model.image_size}x"
                               f"{self.model.image_size} images (model.image_size); use a side of at most "
                               f"{self.model.image_size}, or 0 for no cutout")


@dataclass
class VitInputs:
    data_dir: Path = field(default=Path("data"), metadata={"help": (
        "CIFAR-10 (a folder holding cifar-10-batches-py/ or cifar-10-python.tar.gz, the folder itself, "
        "or the archive) or an image folder with train/<class>/ and test/<class>/ (default: ./data, "
        "where `attnlab data fetch cifar10` puts it)")})


    init: str | None = field(default=None, metadata={"help": (
        "start from pretrained weights: a ViT directory (Hugging Face ViTForImageClassification or timm vit_*), "
        "or hf:NAME; a new head for the data's classes, images resized to the checkpoint's size on the device")})


CONFIG, INPUTS = VitTaskConfig, VitInputs


def loss_fn(model: nn.Module, batch: dict[str, Tensor], label_smoothing: float = 0.0) -> tuple[Tensor, Stats]:
    """Cross-entropy, label-smoothed while training; the stats sum the plain loss."""
    from attnlab.losses import classification_loss

    return classification_loss(model(batch["images"]), batch["labels"], targets=batch.get("targets"),
                               label_smoothing=label_smoothing if model.training else 0.0)


def _check_classes(data: ImageSet, cfg: ViTConfig) -> None:
    if len(data.classes) != cfg.num_classes:
        raise AttnlabError(f"the data has {len(data.classes)} classes but model.num_classes is {cfg.num_classes}; "
                           f"pass --set model.num_classes={len(data.classes)}")
    if tuple(data.images.shape[-2:]) != (cfg.image_size, cfg.image_size) and not cfg.resize_inputs:
        raise AttnlabError(f"images are {data.images.shape[-2]}x{data.images.shape[-1]} but model.image_size is "
                           f"{cfg.image_size}; pass --set model.image_size={data.images.shape[-1]}")


def train(cfg: VitTaskConfig, inputs: VitInputs, run_dir: Path, *, resume: bool | Path = False,
          progress: bool | None = None, allow_changed_data: bool = False) -> dict[str, float]:
    import numpy as np

    from attnlab.data.augment import Augment
    from attnlab.data.images import ImageBatches, load_images, split
    from attnlab.engine import fit, resolve_precision, seed_everything, training_device
    from attnlab.engine.distributed import is_main_process
    from attnlab.engine.evaluate import evaluate as evaluate_batches
    from attnlab.memory import count_parameters, require, training_bytes
    from attnlab.models.vit import VisionTransformer

    saved = resumed_meta(run_dir, resume)
    start, origin = None, saved.get("pretrained") if saved else None
    if inputs.init and not saved:  # a new run from pretrained weights: their architecture, a new head
        start, origin = _init_from(inputs.init, cfg)
    train_all, test = load_images(inputs.data_dir, cfg.model.image_size)
    if start is not None and cfg.model.num_classes != len(train_all.classes):
        cfg.model.num_classes = len(train_all.classes)
        start = {k: v for k, v in start.items() if not k.startswith("head.")}  # the data's classes: a new head
        print(f"vit: a new head for the data's {len(train_all.classes)} classes", file=sys.stderr)
    if cfg.model.num_classes != len(train_all.classes) and cfg.model.num_classes == ViTConfig.num_classes:
        cfg.model.num_classes = len(train_all.classes)  # an image folder with another class count
    _check_classes(train_all, cfg.model)
    d = cfg.data
    if not 0 < d.val_size < len(train_all.labels):
        raise AttnlabError(f"data.val_size={d.val_size} must be between 1 and the {len(train_all.labels) - 1} "
                           "training images that leave at least one for training")
    train_set, val_set = split(train_all, d.val_size, d.split_seed)
    device = training_device(cfg.train.device)
    require(training_bytes(lambda: VisionTransformer(cfg.model)), device=device,
            what=f"training this ViT (model.dim={cfg.model.dim}, model.num_layers={cfg.model.num_layers})",
            fix="lower model.dim, model.mlp_dim or model.num_layers")
    augment = Augment(crop_padding=d.crop_padding, flip=d.flip, trivial=d.trivial, cutout=d.cutout)
    train_batches = ImageBatches(train_set, cfg.train.batch_size, augment=augment, shuffle=True, mixup=d.mixup,
                                 cutmix=d.cutmix, drop_last=len(train_set.labels) >= cfg.train.batch_size,
                                 device=device)
    val_batches = ImageBatches(val_set, d.eval_batch_size, device=device)
    seed_everything(cfg.train.seed)
    model = VisionTransformer(cfg.model)
    if start is not None:
        missing, _ = model.load_state_dict(start, strict=False)
        assert all(k.startswith("head.") for k in missing), f"pretrained weights missing: {missing}"
        del start
    n_params = count_parameters(model)
    if is_main_process():
        print(f"vit: {n_params / 1e6:.2f}M parameters; images from {inputs.data_dir.resolve()}: "
              f"{len(train_set.labels)} train / {len(val_set.labels)} val / {len(test.labels)} test; "
              f"device {device}", file=sys.stderr)

    def print_eval(model: nn.Module, metrics: dict[str, float]) -> None:
        print(f"step {metrics['step']}: val_accuracy {metrics['val_accuracy']:.4f} "
              f"val_loss {metrics['val_loss']:.4f}", file=sys.stderr)

    def train_loss(model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, Stats]:
        return loss_fn(model, batch, d.label_smoothing)

    digest = hashlib.md5(np.ascontiguousarray(train_all.images.numpy()).data)  # no 150 MB copy of the bytes
    digest.update(np.ascontiguousarray(train_all.labels.numpy()).data)
    checksum = digest.hexdigest()
    meta = {"task": "vit", "config": config_to_dict(cfg), "classes": list(train_all.classes),
            "inputs": {"training images": {"path": str(inputs.data_dir), "checksum": checksum}}}
    if origin:
        meta["pretrained"] = origin  # where the starting weights came from, with their checksum
    metrics = fit(model, train_loss, train_batches, val_batches, cfg.train, run_dir, meta=meta, resume=resume,
                  progress=progress, on_eval=print_eval, allow_changed_data=allow_changed_data)
    precision = resolve_precision(cfg.train.precision, device)
    test_metrics = evaluate_batches(model, loss_fn, ImageBatches(test, d.eval_batch_size, device=device),
                                    device=device, autocast_dtype=precision.autocast_dtype, prefix="test_")
    return {**metrics, **test_metrics}


def load_model(checkpoint: str | Path) -> tuple[VisionTransformer, dict[str, Any]]:
    """The trained model (best weights, eval mode) and the checkpoint's meta."""
    from attnlab.engine import load_checkpoint
    from attnlab.models.vit import VisionTransformer

    ckpt = load_checkpoint(checkpoint, task="vit")
    model = VisionTransformer(config_from_dict(VitTaskConfig, ckpt.meta["config"]).model)
    ckpt.load_into(model)
    return model.eval(), ckpt.meta


def evaluate(checkpoint: str | Path, inputs: VitInputs, *, device: str = "auto") -> dict[str, float]:
    from attnlab.data.images import ImageBatches, load_images
    from attnlab.engine import training_device
    from attnlab.engine.evaluate import evaluate as evaluate_batches
    from attnlab.pretrained.source import is_pretrained
    from attnlab.tasks import load_trained

    if is_pretrained(checkpoint):  # a ViT directory, hf:NAME
        _, model, meta = load_trained(checkpoint, tasks=("vit",), what="a ViT")
    else:
        model, meta = load_model(checkpoint)
    _, test = load_images(inputs.data_dir, model.config.image_size)
    if meta.get("pretrained") and len(test.classes) != model.config.num_classes:
        raise AttnlabError(f"{checkpoint} classifies {model.config.num_classes} classes, the data has "
                           f"{len(test.classes)}; fine-tune it on this data first: attnlab train vit --init "
                           f"{checkpoint} --data-dir {inputs.data_dir}")
    _check_classes(test, model.config)
    dev = training_device(device)
    batches = ImageBatches(test, config_from_dict(VitTaskConfig, meta["config"]).data.eval_batch_size, device=dev)
    return evaluate_batches(model.to(dev), loss_fn, batches, device=dev, prefix="test_")


def load_pretrained(source: Source) -> tuple[VisionTransformer, dict[str, Any]]:
    """A pretrained ViT as a vit run: reading attnlab's pixel normalisation (folded into its patch
    embedding), resizing inputs to its own size, with its class names and where it came from."""
    from attnlab.config import config_to_dict
    from attnlab.pretrained.source import source_meta

    model, labels = _pretrained_model(source)
    cfg = VitTaskConfig(model=model.config)
    meta = {"task": "vit", "config": config_to_dict(cfg), "classes": labels, "pretrained": source_meta(source)}
    return model, meta


def _pretrained_model(source: Source, *, need_head: bool = True) -> tuple[VisionTransformer, list[str]]:
    from attnlab.data.augment import MEAN, STD
    from attnlab.pretrained import vit

    model = vit.build(source, need_head=need_head)
    mean, std = vit.pixel_stats(source)
    vit.fold_normalization(model, mean, std, MEAN, STD)  # reads attnlab's normalize() output from now on
    model.config.resize_inputs = True
    return model, vit.labels(source, model.config.num_classes)


def _init_from(spec: str, cfg: VitTaskConfig) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(state dict, meta["pretrained"])`` of ``--init SPEC``; ``cfg.model`` takes its architecture
    (dropout and stochastic depth stay the recipe's)."""
    import dataclasses

    from attnlab.pretrained import family
    from attnlab.pretrained.source import resolve, source_meta

    source = resolve(spec)
    if family(source).TASK != "vit":
        raise AttnlabError(f"--init {spec} is a {source.architecture}, not a ViT; pass a ViT directory or hf:NAME")
    model, _ = _pretrained_model(source, need_head=False)
    headless = not any(bool(p.any()) for p in model.head.parameters())  # ViTModel / ViT-21k: build gave zeros
    cfg.model = dataclasses.replace(model.config, dropout=cfg.model.dropout, attn_dropout=cfg.model.attn_dropout,
                                    drop_path=cfg.model.drop_path)
    print(f"vit: starting from {source.architecture} weights ({spec}), {cfg.model.image_size}x"
          f"{cfg.model.image_size} images", file=sys.stderr, flush=True)
    state = {k: v for k, v in model.state_dict().items() if not (headless and k.startswith("head."))}
    return state, source_meta(source, with_checksum=True)


class ImageReader:
    """How a ViT reads images (:class:`attnlab.attended.Reader`, kind ``image``): uint8 images of
    its training size, normalised as in training; the classes are the run's."""

    kind = "image"
    title = "Vision Transformer"

    def __init__(self, model: VisionTransformer, meta: dict[str, Any]) -> None:
        self.image_size = model.config.image_size
        self.labels = list(meta.get("classes") or [str(c) for c in range(model.config.num_classes)])

    def images(self, images: Tensor) -> tuple[Tensor, ...]:
        from attnlab.data.augment import normalize

        return (normalize(images),)


def reader(model: VisionTransformer, meta: dict[str, Any]) -> ImageReader:
    """How the model reads images (the door to :meth:`VisionTransformer.attend`)."""
    return ImageReader(model, meta)
