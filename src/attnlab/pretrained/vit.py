"""Hugging Face ``ViTForImageClassification`` and timm ``vit_*`` weights in
:class:`attnlab.models.vit.VisionTransformer`, and back to Hugging Face.

attnlab's ViT is the standard one: a conv patch embedding, a class token, learned positions,
pre-norm blocks, a final LayerNorm and a linear head on the class token. Hugging Face keeps the
query, key and value projections apart (concatenated here into the fused ``qkv``); timm already
fuses them. Hugging Face's LayerNorm eps is 1e-12, timm's 1e-6 (``ViTConfig.norm_eps``). Other
image sizes interpolate the position grid bicubically without corner alignment, as Hugging Face's
``interpolate_pos_encoding=True`` does (:func:`attnlab.positional.interpolate_pos_2d`).

Pixel normalisation: the loaded model expects the source's (``image_mean`` / ``image_std``,
Hugging Face's 0.5 / 0.5 by default); :func:`fold_normalization` rewrites the patch embedding so
that the model reads attnlab's own normalisation instead, exactly (the patch projection is linear).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnlab.errors import AttnlabError
from attnlab.pretrained.source import Source, state_dict, strip_prefix, take

if TYPE_CHECKING:
    from collections.abc import Sequence

    from torch import Tensor

    from attnlab.models.configs import ViTConfig
    from attnlab.models.vit import VisionTransformer

__all__ = ["TASK", "vit_config", "build", "labels", "pixel_stats", "fold_normalization", "hf_config", "hf_state",
           "export"]

TASK = "vit"
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}
# timm's model names -> (width, heads) of each size, for the head count a state dict does not hold
TIMM_SIZES = {"tiny": (192, 3), "small": (384, 6), "base": (768, 12), "large": (1024, 16), "huge": (1280, 16)}
HF_MEAN = HF_STD = (0.5, 0.5, 0.5)  # ViTImageProcessor's defaults


def is_timm(source: Source) -> bool:
    """A timm checkpoint: its config.json names an ``architecture`` (``vit_base_patch16_224``...)."""
    return "architecture" in source.config and "model_type" not in source.config


def vit_config(source: Source, state: dict[str, Tensor]) -> ViTConfig:
    """The :class:`ViTConfig` of a Hugging Face ``config.json`` or a timm checkpoint (its shapes
    read from the tensors, the head count from the model name or ``model_args``)."""
    from attnlab.models.configs import ViTConfig

    c = source.config
    if is_timm(source):
        arch = str(c["architecture"])
        if "cls_token" not in state or any(k.startswith(("reg_token", "fc_norm", "norm_pre")) for k in state) or \
                c.get("global_pool", "token") not in ("token", ""):
            raise AttnlabError(f"{source.spec}: timm's {arch} is a ViT variant (no class token, register tokens, "
                               f"average pooling or a pre-norm) that attnlab's ViT does not have; supported: the "
                               f"plain vit_* models with a class token")
        dim = int(take(state, "cls_token", (1, 1, state["cls_token"].shape[-1]), source).shape[-1])
        heads = (c.get("model_args") or {}).get("num_heads")
        if heads is None:
            size = next((s for s in TIMM_SIZES if f"_{s}_" in f"_{arch}_"), None)
            if size is None or TIMM_SIZES[size][0] != dim:
                raise AttnlabError(f"{source.spec}: cannot tell the head count of timm's {arch} (width {dim}); add "
                                   f"\"model_args\": {{\"num_heads\": N}} to its config.json")
            heads = TIMM_SIZES[size][1]
        patch = int(state["patch_embed.proj.weight"].shape[-1]) if "patch_embed.proj.weight" in state else 16
        size_hw = (c.get("pretrained_cfg") or {}).get("input_size") or [3, 224, 224]
        depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
        mlp = int(state["blocks.0.mlp.fc1.weight"].shape[0]) if "blocks.0.mlp.fc1.weight" in state else 4 * dim
        classes = int(c.get("num_classes", state["head.weight"].shape[0] if "head.weight" in state else 0))
        return _checked(source, ViTConfig(image_size=int(size_hw[-1]), patch_size=patch, in_channels=int(size_hw[0]),
                                          num_classes=classes, dim=dim, num_layers=depth, num_heads=int(heads),
                                          head_dim=dim // int(heads), mlp_dim=mlp, activation="gelu", norm_eps=1e-6))
    act = str(c.get("hidden_act", "gelu"))
    if act not in ACTIVATIONS:
        raise AttnlabError(f"{source.spec}: hidden_act {act!r} has no attnlab counterpart (supported: "
                           f"{', '.join(ACTIVATIONS)})")
    if not c.get("qkv_bias", True):
        raise AttnlabError(f"{source.spec}: qkv_bias=false is not supported by attnlab's ViT (its projections have "
                           f"biases)")
    dim, heads = int(c.get("hidden_size", 768)), int(c.get("num_attention_heads", 12))
    id2label = c.get("id2label") or {}
    return _checked(source, ViTConfig(
        image_size=int(c.get("image_size", 224)), patch_size=int(c.get("patch_size", 16)),
        in_channels=int(c.get("num_channels", 3)), num_classes=int(c.get("num_labels", len(id2label) or 2)),
        dim=dim, num_layers=int(c.get("num_hidden_layers", 12)), num_heads=heads, head_dim=dim // heads,
        mlp_dim=int(c.get("intermediate_size", 4 * dim)), dropout=float(c.get("hidden_dropout_prob", 0.0)),
        attn_dropout=float(c.get("attention_probs_dropout_prob", 0.0)), activation=ACTIVATIONS[act],  # type: ignore[arg-type]
        norm_eps=float(c.get("layer_norm_eps", 1e-12))))


def has_head(source: Source, state: dict[str, Tensor]) -> bool:
    """Whether the checkpoint has a classification head (``ViTModel`` and timm ``num_classes=0`` have none)."""
    return ("head.weight" if is_timm(source) else "classifier.weight") in state


def _checked(source: Source, cfg: ViTConfig) -> ViTConfig:
    if cfg.num_classes < 2:
        cfg.num_classes = 2  # a headless checkpoint: a placeholder head, which --init replaces
    if cfg.dim % cfg.num_heads:
        raise AttnlabError(f"{source.spec}: width {cfg.dim} is not divisible by {cfg.num_heads} heads")
    cfg.check()
    return cfg


def labels(source: Source, num_classes: int) -> list[str]:
    """The class names: config.json's ``id2label`` (or timm's ``label_names``), else ``0 .. n-1``."""
    c = source.config
    names = c.get("label_names") or (c.get("pretrained_cfg") or {}).get("label_names")
    if isinstance(names, list) and len(names) == num_classes:
        return [str(n) for n in names]
    id2label = c.get("id2label") or {}
    try:
        return [str(id2label[str(i)]) if str(i) in id2label else str(id2label[i]) for i in range(num_classes)]
    except KeyError:
        return [str(i) for i in range(num_classes)]


def pixel_stats(source: Source) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The per-channel mean and std the source's pixels are normalised with (on [0, 1] values)."""
    if is_timm(source):
        p = source.config.get("pretrained_cfg") or {}
        return tuple(p.get("mean", HF_MEAN)), tuple(p.get("std", HF_STD))
    path = source.directory / "preprocessor_config.json"
    try:
        p = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError:
        p = {}
    return tuple(p.get("image_mean", HF_MEAN)), tuple(p.get("image_std", HF_STD))


def _hf_names(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Hugging Face's checkpoint names (``vit.encoder.layer.i.attention.attention.query``), also from
    transformers 5's in-memory ones (``vit.layers.i.attention.q_proj``)."""
    renames = [(r"^vit\.layers\.(\d+)\.", r"vit.encoder.layer.\1."),
               (r"attention\.q_proj", "attention.attention.query"),
               (r"attention\.k_proj", "attention.attention.key"), (r"attention\.v_proj", "attention.attention.value"),
               (r"attention\.o_proj", "attention.output.dense"), (r"\.mlp\.fc1\.", ".intermediate.dense."),
               (r"\.mlp\.fc2\.", ".output.dense.")]
    out = {}
    for name, t in state.items():
        if name.startswith(("embeddings.", "encoder.", "layernorm.", "layers.")):  # ViTModel: no "vit." prefix
            name = "vit." + name
        if name.startswith("vit.layers."):
            for pattern, repl in renames:
                name = re.sub(pattern, repl, name)
        out[name] = t
    return out


def build(source: Source, state: dict[str, Tensor] | None = None, *, need_head: bool = True) -> VisionTransformer:
    """A VisionTransformer holding the source's weights (eval mode, CPU, float32), reading pixels
    normalised as the source's were (see :func:`fold_normalization`). A checkpoint without a
    classification head (``ViTModel``, ViT-21k) is an error unless ``need_head`` is False (fine-tuning
    gives it a new head): its head is then zeros."""
    import torch

    from attnlab.models.vit import VisionTransformer

    state = state_dict(source) if state is None else state
    timm = is_timm(source)
    state = strip_prefix(state, "module.") if timm else _hf_names(state)
    if not has_head(source, state):
        if need_head:
            raise AttnlabError(f"{source.spec} has no classification head ({source.architecture}); fine-tune it "
                               f"first: attnlab train vit --init {source.spec} --data-dir DIR")
        cfg0 = vit_config(source, state)
        state = {**state, **_zero_head(timm, cfg0.num_classes, cfg0.dim)}
    cfg = vit_config(source, state)
    D, M, C, p = cfg.dim, cfg.mlp_dim, cfg.in_channels, cfg.patch_size
    N = (cfg.image_size // p) ** 2

    def get(name: str, shape: tuple[int, ...]) -> Tensor:
        return take(state, name, shape, source)

    mine: dict[str, Tensor] = {}
    if timm:
        mine |= {"cls_token": get("cls_token", (1, 1, D)), "pos_embed.weight": get("pos_embed", (1, 1 + N, D))[0],
                 "patch_embed.proj.weight": get("patch_embed.proj.weight", (D, C, p, p)),
                 "patch_embed.proj.bias": get("patch_embed.proj.bias", (D,)),
                 "norm.weight": get("norm.weight", (D,)), "norm.bias": get("norm.bias", (D,)),
                 "head.weight": get("head.weight", (cfg.num_classes, D)),
                 "head.bias": get("head.bias", (cfg.num_classes,))}
        for i in range(cfg.num_layers):
            b, a = f"blocks.{i}.", f"transformer.layers.{i}."
            for ours, theirs, shape in (("norm1", "norm1", (D,)), ("norm2", "norm2", (D,)),
                                        ("attn.qkv", "attn.qkv", (3 * D, D)), ("attn.W_O", "attn.proj", (D, D)),
                                        ("mlp.fc1", "mlp.fc1", (M, D)), ("mlp.fc2", "mlp.fc2", (D, M))):
                mine[a + ours + ".weight"] = get(b + theirs + ".weight", shape)
                mine[a + ours + ".bias"] = get(b + theirs + ".bias", (shape[0],))
    else:
        e = "vit.embeddings."
        mine |= {"cls_token": get(e + "cls_token", (1, 1, D)),
                 "pos_embed.weight": get(e + "position_embeddings", (1, 1 + N, D))[0],
                 "patch_embed.proj.weight": get(e + "patch_embeddings.projection.weight", (D, C, p, p)),
                 "patch_embed.proj.bias": get(e + "patch_embeddings.projection.bias", (D,)),
                 "norm.weight": get("vit.layernorm.weight", (D,)), "norm.bias": get("vit.layernorm.bias", (D,)),
                 "head.weight": get("classifier.weight", (cfg.num_classes, D)),
                 "head.bias": get("classifier.bias", (cfg.num_classes,))}
        for i in range(cfg.num_layers):
            h, a = f"vit.encoder.layer.{i}.", f"transformer.layers.{i}."
            qkv = [h + f"attention.attention.{n}" for n in ("query", "key", "value")]
            mine[a + "attn.qkv.weight"] = torch.cat([get(n + ".weight", (D, D)) for n in qkv])  # (3D, D): [Wq|Wk|Wv]
            mine[a + "attn.qkv.bias"] = torch.cat([get(n + ".bias", (D,)) for n in qkv])
            for ours, theirs, shape in (("norm1", "layernorm_before", (D,)), ("norm2", "layernorm_after", (D,)),
                                        ("attn.W_O", "attention.output.dense", (D, D)),
                                        ("mlp.fc1", "intermediate.dense", (M, D)), ("mlp.fc2", "output.dense", (D, M))):
                mine[a + ours + ".weight"] = get(h + theirs + ".weight", shape)
                mine[a + ours + ".bias"] = get(h + theirs + ".bias", (shape[0],))
    with torch.device("meta"):  # no random initialisation: every tensor is overwritten
        model = VisionTransformer(cfg)
    model = model.to_empty(device="cpu")
    model.load_state_dict(mine, strict=True)
    return model.eval()


def _zero_head(timm: bool, classes: int, dim: int) -> dict[str, Tensor]:
    import torch

    name = "head" if timm else "classifier"
    return {f"{name}.weight": torch.zeros(classes, dim), f"{name}.bias": torch.zeros(classes)}


def fold_normalization(model: VisionTransformer, mean: Sequence[float], std: Sequence[float],
                       to_mean: Sequence[float], to_std: Sequence[float]) -> VisionTransformer:
    """Make ``model`` (which reads pixels normalised with ``mean``/``std``) read pixels normalised with
    ``to_mean``/``to_std`` instead: with ``x = (u - m) / s`` for pixel values ``u`` in [0, 1],
    ``x_from = x_to * (s_to / s_from) + (m_to - m_from) / s_from``, and the patch projection is
    linear, so its weights scale per input channel and its bias absorbs the shift. In place; returned."""
    import torch

    if model.stem is not None:
        raise AttnlabError("a ViT with a convolutional stem cannot fold a normalisation into its patch embedding")
    proj = model.patch_embed.proj
    with torch.no_grad():
        m, s = torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)
        mt, st = torch.tensor(to_mean, dtype=torch.float64), torch.tensor(to_std, dtype=torch.float64)
        w = proj.weight.double()  # (D, C, p, p)
        scale, shift = st / s, (mt - m) / s  # (C,) each
        assert proj.bias is not None
        proj.bias.copy_((proj.bias.double() + (w * shift.view(1, -1, 1, 1)).sum((1, 2, 3))).float())
        proj.weight.copy_((w * scale.view(1, -1, 1, 1)).float())
    return model


def hf_config(model: VisionTransformer, classes: Sequence[str]) -> dict[str, Any]:
    """The ``config.json`` of a ``ViTForImageClassification`` equal to ``model``."""
    c = model.config
    if c.stem_channels or c.head_hidden or c.head_dim * c.num_heads != c.dim:
        raise AttnlabError("this ViT has no Hugging Face counterpart (a convolutional stem, an MLP head or heads "
                           "narrower than dim / num_heads); only the plain ViT exports")
    return {"architectures": ["ViTForImageClassification"], "model_type": "vit", "hidden_size": c.dim,
            "num_hidden_layers": c.num_layers, "num_attention_heads": c.num_heads, "intermediate_size": c.mlp_dim,
            "hidden_act": "gelu" if c.activation == "gelu" else "gelu_pytorch_tanh",
            "hidden_dropout_prob": c.dropout, "attention_probs_dropout_prob": c.attn_dropout,
            "layer_norm_eps": c.norm_eps, "image_size": c.image_size, "patch_size": c.patch_size,
            "num_channels": c.in_channels, "qkv_bias": True, "encoder_stride": c.patch_size,
            "id2label": {str(i): str(n) for i, n in enumerate(classes)},
            "label2id": {str(n): i for i, n in enumerate(classes)}, "torch_dtype": "float32"}


def hf_state(model: VisionTransformer) -> dict[str, Tensor]:
    """``ViTForImageClassification``'s tensors (checkpoint names) for ``model``."""
    import torch

    c = model.config
    sd = {k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()}
    e = "vit.embeddings."
    out = {e + "cls_token": sd["cls_token"].clone(), e + "position_embeddings": sd["pos_embed.weight"][None].clone(),
           e + "patch_embeddings.projection.weight": sd["patch_embed.proj.weight"].contiguous(),
           e + "patch_embeddings.projection.bias": sd["patch_embed.proj.bias"].clone(),
           "vit.layernorm.weight": sd["norm.weight"].clone(), "vit.layernorm.bias": sd["norm.bias"].clone(),
           "classifier.weight": sd["head.weight"].clone(), "classifier.bias": sd["head.bias"].clone()}
    for i in range(c.num_layers):
        h, a = f"vit.encoder.layer.{i}.", f"transformer.layers.{i}."
        for part, name in zip(sd[a + "attn.qkv.weight"].chunk(3), ("query", "key", "value")):
            out[h + f"attention.attention.{name}.weight"] = part.clone()
        for part, name in zip(sd[a + "attn.qkv.bias"].chunk(3), ("query", "key", "value")):
            out[h + f"attention.attention.{name}.bias"] = part.clone()
        for ours, theirs in (("norm1", "layernorm_before"), ("norm2", "layernorm_after"),
                             ("attn.W_O", "attention.output.dense"), ("mlp.fc1", "intermediate.dense"),
                             ("mlp.fc2", "output.dense")):
            out[h + theirs + ".weight"] = sd[a + ours + ".weight"].clone()
            out[h + theirs + ".bias"] = sd[a + ours + ".bias"].clone()
    return out


def export(model: VisionTransformer, meta: dict[str, Any], out: Path) -> list[Path]:
    """Write ``config.json``, ``model.safetensors`` and ``preprocessor_config.json`` (attnlab's pixel
    normalisation, which the model reads) into ``out``; the files written."""
    from safetensors.torch import save_file

    from attnlab.data.augment import MEAN, STD

    classes = meta.get("classes") or [str(i) for i in range(model.config.num_classes)]
    written = [out / "config.json", out / "model.safetensors", out / "preprocessor_config.json"]
    written[0].write_text(json.dumps(hf_config(model, classes), indent=2) + "\n", encoding="utf-8")
    save_file(hf_state(model), str(written[1]), metadata={"format": "pt"})
    size = model.config.image_size
    pre = {"image_processor_type": "ViTImageProcessor", "do_resize": True, "size": {"height": size, "width": size},
           "resample": 2, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
           "image_mean": list(MEAN), "image_std": list(STD)}
    written[2].write_text(json.dumps(pre, indent=2) + "\n", encoding="utf-8")
    return written
