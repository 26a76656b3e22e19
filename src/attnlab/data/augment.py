"""Image augmentation as batched tensor operations, and the normalisation every image gets.

No torchvision: a random crop is one gather, a flip one `torch.where`, so augmentation runs on
whatever device the batch lives on (:class:`attnlab.data.images.ImageBatches` keeps the data
set on the training device). Every draw comes from the generator passed in, so an epoch's
augmentation is reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# Per-channel statistics of the CIFAR-10 training images, used to normalise every image set.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (or [0, 255] float) images (B, 3, H, W) -> float32 with zero mean, unit variance."""
    mean = torch.tensor(MEAN, device=images.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD, device=images.device).view(1, 3, 1, 1) * 255
    return (images.float() - mean) / std


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Pad each image by `padding` (reflection) and crop it back to its size at a random offset."""
    B, C, H, W = x.shape
    if padding <= 0:
        return x
    padded = F.pad(x.float(), (padding,) * 4, mode="reflect").to(x.dtype)  # (B, C, H+2p, W+2p)
    top = torch.randint(0, 2 * padding + 1, (B,), generator=generator).to(x.device)
    left = torch.randint(0, 2 * padding + 1, (B,), generator=generator).to(x.device)
    rows = top[:, None] + torch.arange(H, device=x.device)  # (B, H)
    cols = left[:, None] + torch.arange(W, device=x.device)  # (B, W)
    b = torch.arange(B, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)  # (B, C, H, W), channels-last in memory


def random_flip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Flip each image left-right with probability `p`."""
    flip = (torch.rand(x.shape[0], generator=generator) < p).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def cutout(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero a ``size`` x ``size`` square at a random centre of each image (clipped at the border).

    The square covers rows ``cy - size // 2 .. cy - size // 2 + size - 1`` (and likewise columns),
    so it is exactly ``size`` pixels wide wherever it lies fully inside the image.
    """
    if size <= 0:
        return x
    B, _, H, W = x.shape
    top = torch.randint(0, H, (B,), generator=generator).to(x.device) - size // 2  # (B,)
    left = torch.randint(0, W, (B,), generator=generator).to(x.device) - size // 2
    ys = torch.arange(H, device=x.device)[None, :] - top[:, None]  # (B, H): row offset into the square
    xs = torch.arange(W, device=x.device)[None, :] - left[:, None]  # (B, W)
    inside_y = (ys >= 0) & (ys < size)
    inside_x = (xs >= 0) & (xs < size)
    hole = inside_y[:, :, None] & inside_x[:, None, :]  # (B, H, W)
    return x.masked_fill(hole[:, None], 0)


# TrivialAugment (Mueller and Hutter, 2021), its "wide" ranges: each image gets ONE operation
# drawn uniformly, at a magnitude drawn uniformly from the operation's range. No tuning knobs.
TRIVIAL_OPS = ("identity", "brightness", "color", "contrast", "sharpness", "posterize", "solarize",
               "autocontrast", "rotate", "shear_x", "shear_y", "translate_x", "translate_y")
FILL = 128.0  # the value geometric operations fill uncovered pixels with (mid grey)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``other + factor * (x - other)`` per image, clipped to [0, 255]: factor 1 is the identity."""
    return (other + factor.view(-1, 1, 1, 1) * (x - other)).clamp(0, 255)


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)  # (B, 3, H, W)


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Warp each image by its 2x3 matrix ``theta`` (B, 2, 3), in pixel units about the centre;
    nearest-neighbour sampling, uncovered pixels filled with :data:`FILL`."""
    B, _, H, W = x.shape
    scale = torch.tensor([[2.0 / W, 0.0], [0.0, 2.0 / H]], device=x.device)  # pixels -> [-1, 1]
    lin = theta[:, :, :2]
    shift = (scale @ theta[:, :, 2:]).squeeze(-1)  # (B, 2)
    grid = F.affine_grid(torch.cat([lin, shift[:, :, None]], dim=2), list(x.shape), align_corners=False)
    out = F.grid_sample(x - FILL, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out + FILL


def trivial_augment(x: torch.Tensor, generator: torch.Generator, ops: tuple[str, ...] = TRIVIAL_OPS) -> torch.Tensor:
    """TrivialAugment on a batch of [0, 255] images (B, 3, H, W), one random operation per image
    (drawn from ``ops``, all of :data:`TRIVIAL_OPS` by default).

    The draws come from ``generator``; each operation then runs on the images that drew it only.
    Returns float images in [0, 255].
    """
    x = x.float()
    B, dev = x.shape[0], x.device
    op = torch.tensor([TRIVIAL_OPS.index(o) for o in ops], device=dev)[
        torch.randint(0, len(ops), (B,), generator=generator).to(dev)]
    m = torch.rand(B, generator=generator).to(dev)  # magnitude in [0, 1): scaled per operation below
    sign = torch.where(torch.rand(B, generator=generator) < 0.5, -1.0, 1.0).to(dev)
    out = torch.empty_like(x)
    for i, name in enumerate(TRIVIAL_OPS):
        chosen = (op == i).nonzero(as_tuple=True)[0]
        if len(chosen):
            out[chosen] = _trivial_op(name, x[chosen], m[chosen], sign[chosen])
    return out


def _trivial_op(name: str, x: torch.Tensor, m: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """One TrivialAugment operation on images (b, 3, H, W), each at its own magnitude ``m`` in
    [0, 1) and direction ``sign`` (+-1)."""
    factor = 1.0 + 0.99 * m * sign  # enhancement factors in [0.01, 1.99]
    if name == "identity":
        return x
    if name == "brightness":
        return _blend(x, torch.zeros_like(x), factor)
    if name == "color":
        return _blend(x, _gray(x), factor)
    if name == "contrast":
        return _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True).expand_as(x), factor)
    if name == "sharpness":
        kernel = torch.tensor([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]], device=x.device).div(13).expand(3, 1, 3, 3)
        return _blend(x, F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=3), factor)
    if name == "posterize":
        bits = (8 - (m * 7).floor()).clamp(1, 8)  # posterize to 1..8 bits
        step = 2.0 ** (8 - bits).view(-1, 1, 1, 1)
        return torch.floor(x / step) * step
    if name == "solarize":
        return torch.where(x >= (255.0 * (1 - m)).view(-1, 1, 1, 1), 255.0 - x, x)
    if name == "autocontrast":
        lo = x.amin(dim=(2, 3), keepdim=True)
        hi = x.amax(dim=(2, 3), keepdim=True)
        return torch.where(hi > lo, (x - lo) * 255.0 / (hi - lo).clamp_min(1e-6), x)
    theta = torch.eye(2, 3, device=x.device).expand(x.shape[0], 2, 3).clone()  # the geometric ones
    if name == "rotate":
        angle = torch.deg2rad(135.0 * m * sign)
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle), -torch.sin(angle)
        theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle), torch.cos(angle)
    elif name == "shear_x":
        theta[:, 0, 1] = 0.99 * m * sign
    elif name == "shear_y":
        theta[:, 1, 0] = 0.99 * m * sign
    elif name == "translate_x":
        theta[:, 0, 2] = (32.0 * m * sign).round()
    elif name == "translate_y":
        theta[:, 1, 2] = (32.0 * m * sign).round()
    else:
        raise ValueError(f"unknown TrivialAugment operation {name!r}")
    return _affine(x, theta)


def _beta(alpha: float, generator: torch.Generator) -> float:
    """A draw from Beta(alpha, alpha), reproducible from ``generator`` (NumPy does the sampling)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def mix(x: torch.Tensor, labels: torch.Tensor, num_classes: int, *, mixup: float, cutmix: float,
        generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al., 2018) or CutMix (Yun et al., 2019) of a batch with a shuffled copy of
    itself: returns the mixed images and soft targets (B, num_classes).

    ``lam ~ Beta(alpha, alpha)``; mixup blends whole images, ``lam * x + (1 - lam) * x[perm]``;
    cutmix pastes a box of area ``(1 - lam)`` from ``x[perm]`` (clipped at the border, and ``lam``
    corrected to the pasted area). With both alphas > 0, each batch picks one at random.
    """
    B, _, H, W = x.shape
    onehot = F.one_hot(labels, num_classes).float()  # (B, C)
    use_cutmix = cutmix > 0 and (mixup <= 0 or bool(torch.rand(1, generator=generator) < 0.5))
    lam = _beta(cutmix if use_cutmix else mixup, generator)
    perm = torch.randperm(B, generator=generator).to(x.device)
    if use_cutmix:
        cut_h, cut_w = int(H * (1 - lam) ** 0.5), int(W * (1 - lam) ** 0.5)
        cy, cx = (int(v) for v in torch.randint(0, 10**9, (2,), generator=generator))
        cy, cx = cy % H, cx % W
        top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h - cut_h // 2, H)
        left, right = max(cx - cut_w // 2, 0), min(cx + cut_w - cut_w // 2, W)
        x = x.clone()
        x[:, :, top:bottom, left:right] = x[perm, :, top:bottom, left:right]
        lam = 1.0 - (bottom - top) * (right - left) / (H * W)
    else:
        x = lam * x + (1 - lam) * x[perm]
    return x, lam * onehot + (1 - lam) * onehot[perm]


@dataclass
class Augment:
    """The training augmentation; every part can be switched off (0 / False)."""

    crop_padding: int = 4  # random translation by up to this many pixels
    flip: bool = True  # random horizontal flip
    trivial: bool = False  # TrivialAugment: one random photometric or geometric operation per image
    cutout: int = 0  # side of a square zeroed at a random place (after normalisation: the mean)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> augmented, normalised float32 (B, 3, H, W)."""
        x = random_crop(images, self.crop_padding, generator)
        if self.flip:
            x = random_flip(x, generator)
        if self.trivial:
            x = trivial_augment(x, generator)
        x = normalize(x)
        return cutout(x, self.cutout, generator)
