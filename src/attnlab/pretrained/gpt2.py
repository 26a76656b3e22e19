"""GPT-2 (every size, distilgpt2) and nanoGPT weights in :class:`attnlab.models.gpt.DialogueGPT`, and back.

DialogueGPT is GPT-2's architecture: token and learned position embeddings, pre-norm blocks with
a fused ``[W_Q | W_K | W_V]`` projection, a final LayerNorm and a tied head. The tensors map one to
one; only Hugging Face's ``Conv1D`` stores its weights as (in, out), so they are transposed into
``nn.Linear``'s (out, in). GPT-2's GELU is the tanh approximation (``activation_function``
``gelu_new``), hence ``GPTConfig(activation="gelu_tanh")``; nanoGPT's is the exact one.

=========================================  ===========================================
Hugging Face ``GPT2LMHeadModel``           attnlab ``DialogueGPT``
=========================================  ===========================================
``transformer.wte`` / ``wpe``              ``tok`` / ``pos``
``transformer.h.i.ln_1`` / ``ln_2``        ``transformer.layers.i.norm1`` / ``norm2``
``transformer.h.i.attn.c_attn`` (Conv1D)   ``transformer.layers.i.attn.qkv`` (transposed)
``transformer.h.i.attn.c_proj``            ``transformer.layers.i.attn.W_O``
``transformer.h.i.mlp.c_fc`` / ``c_proj``  ``transformer.layers.i.mlp.fc1`` / ``fc2``
``transformer.ln_f``, ``lm_head``          ``norm``, ``head`` (tied unless the config says not)
=========================================  ===========================================
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnlab.errors import AttnlabError
from attnlab.pretrained.source import Source, state_dict, strip_prefix, take

if TYPE_CHECKING:
    from torch import Tensor

    from attnlab.models.configs import GPTConfig
    from attnlab.models.gpt import DialogueGPT

__all__ = ["TASK", "gpt_config", "build", "export", "hf_config", "hf_state"]

TASK = "gpt"
# config.json's activation_function -> GPTConfig.activation (gelu_new and gelu_fast are the same tanh formula)
ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh", "gelu": "gelu"}


def gpt_config(source: Source) -> GPTConfig:
    """The :class:`GPTConfig` of a GPT-2 ``config.json`` or nanoGPT's ``model_args``."""
    from attnlab.models.configs import GPTConfig

    c = source.config
    try:
        if source.kind == "nanogpt":  # nanoGPT: exact GELU, eps 1e-5, biases optional
            dim, heads = int(c["n_embd"]), int(c["n_head"])
            return GPTConfig(vocab_size=int(c["vocab_size"]), context=int(c["block_size"]), dim=dim, num_heads=heads,
                             num_layers=int(c["n_layer"]), mlp_dim=4 * dim, dropout=float(c.get("dropout", 0.0)),
                             attn_dropout=float(c.get("dropout", 0.0)), bias=bool(c.get("bias", True)),
                             activation="gelu", norm_eps=1e-5)
        act = str(c.get("activation_function", "gelu_new"))
        if act not in ACTIVATIONS:
            raise AttnlabError(f"{source.spec}: activation_function {act!r} has no attnlab counterpart "
                               f"(supported: {', '.join(ACTIVATIONS)})")
        for flag, ok in (("scale_attn_by_inverse_layer_idx", False), ("add_cross_attention", False),
                         ("scale_attn_weights", True)):
            if bool(c.get(flag, ok)) != ok:
                raise AttnlabError(f"{source.spec}: config.json sets {flag}={c.get(flag)}, which attnlab's GPT does "
                                   f"not implement; only the standard GPT-2 attention is supported")
        dim = int(c.get("n_embd", 768))
        inner = c.get("n_inner")
        return GPTConfig(vocab_size=int(c.get("vocab_size", 50257)), context=int(c.get("n_positions", 1024)), dim=dim,
                         num_heads=int(c.get("n_head", 12)), num_layers=int(c.get("n_layer", 12)),
                         mlp_dim=int(inner) if inner else 4 * dim, dropout=float(c.get("resid_pdrop", 0.1)),
                         attn_dropout=float(c.get("attn_pdrop", 0.1)), bias=True,
                         tie_weights=bool(c.get("tie_word_embeddings", True)), activation=ACTIVATIONS[act],  # type: ignore[arg-type]
                         norm_eps=float(c.get("layer_norm_epsilon", 1e-5)))
    except (KeyError, TypeError, ValueError) as exc:
        raise AttnlabError(f"{source.spec}: the GPT-2 configuration is incomplete or malformed ({exc!r}); pass an "
                           f"unmodified config.json") from exc


def build(source: Source, state: dict[str, Tensor] | None = None) -> DialogueGPT:
    """A DialogueGPT holding the source's weights (eval mode, CPU, float32)."""
    import torch

    from attnlab.models.gpt import DialogueGPT

    cfg = gpt_config(source)
    cfg.check()
    state = strip_prefix(state_dict(source) if state is None else state, "transformer.")
    conv1d = source.kind == "hf"  # Hugging Face's Conv1D is (in, out); nanoGPT's nn.Linear is (out, in)
    D, M, V = cfg.dim, cfg.mlp_dim, cfg.vocab_size

    def get(name: str, shape: tuple[int, ...]) -> Tensor:
        return take(state, name, shape, source)

    def linear(name: str, n_in: int, n_out: int) -> Tensor:
        return get(name, (n_in, n_out)).t() if conv1d else get(name, (n_out, n_in))

    mine: dict[str, Tensor] = {"tok.weight": get("wte.weight", (V, D)),
                               "pos.weight": get("wpe.weight", (cfg.context, D)),
                               "norm.weight": get("ln_f.weight", (D,))}
    for i in range(cfg.num_layers):
        h, a = f"h.{i}.", f"transformer.layers.{i}."
        pairs = {"norm1": ("ln_1", D, D), "attn.qkv": ("attn.c_attn", D, 3 * D), "attn.W_O": ("attn.c_proj", D, D),
                 "norm2": ("ln_2", D, D), "mlp.fc1": ("mlp.c_fc", D, M), "mlp.fc2": ("mlp.c_proj", M, D)}
        for ours, (theirs, n_in, n_out) in pairs.items():
            if ours.startswith("norm"):
                mine[a + ours + ".weight"] = get(h + theirs + ".weight", (D,))
            else:
                mine[a + ours + ".weight"] = linear(h + theirs + ".weight", n_in, n_out)
            if cfg.bias:
                mine[a + ours + ".bias"] = get(h + theirs + ".bias", (n_out,))
    if cfg.bias:
        mine["norm.bias"] = get("ln_f.bias", (D,))
    # tied: the head is the embedding (state_dict lists the one tensor under both names)
    mine["head.weight"] = mine["tok.weight"] if cfg.tie_weights else get("lm_head.weight", (V, D))
    with torch.device("meta"):  # no random initialisation (it would be overwritten, and cost seconds for GPT-2 XL)
        model = DialogueGPT(cfg)
    model = model.to_empty(device="cpu")
    if cfg.tie_weights:
        model.head.weight = model.tok.weight  # to_empty unties; tie again
    model.load_state_dict(mine, strict=True, assign=False)
    return model.eval()


def hf_config(model: DialogueGPT) -> dict[str, Any]:
    """The ``config.json`` of a ``GPT2LMHeadModel`` equal to ``model``."""
    c = model.config
    if c.dim % c.num_heads:
        raise AttnlabError(f"model.dim={c.dim} is not divisible by model.num_heads={c.num_heads}; GPT-2 cannot hold it")
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": c.vocab_size,
            "n_positions": c.context, "n_embd": c.dim, "n_layer": c.num_layers, "n_head": c.num_heads,
            "n_inner": c.mlp_dim, "activation_function": "gelu_new" if c.activation == "gelu_tanh" else "gelu",
            "resid_pdrop": c.dropout, "embd_pdrop": c.dropout, "attn_pdrop": c.attn_dropout,
            "layer_norm_epsilon": c.norm_eps, "tie_word_embeddings": c.tie_weights, "scale_attn_weights": True,
            "bos_token_id": None, "eos_token_id": None, "torch_dtype": "float32"}


def hf_state(model: DialogueGPT) -> dict[str, Tensor]:
    """``GPT2LMHeadModel``'s tensors for ``model`` (Conv1D weights transposed; zero biases where
    the model has none, which computes the same)."""
    import torch

    c = model.config
    sd = {k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()}

    def bias(name: str, n: int) -> Tensor:
        return sd[name].clone() if name in sd else torch.zeros(n)

    out = {"transformer.wte.weight": sd["tok.weight"].clone(), "transformer.wpe.weight": sd["pos.weight"].clone(),
           "transformer.ln_f.weight": sd["norm.weight"].clone(), "transformer.ln_f.bias": bias("norm.bias", c.dim)}
    for i in range(c.num_layers):
        a, h = f"transformer.layers.{i}.", f"transformer.h.{i}."
        for ours, theirs in (("norm1", "ln_1"), ("norm2", "ln_2")):
            out[h + theirs + ".weight"] = sd[a + ours + ".weight"].clone()
            out[h + theirs + ".bias"] = bias(a + ours + ".bias", c.dim)
        for ours, theirs in (("attn.qkv", "attn.c_attn"), ("attn.W_O", "attn.c_proj"), ("mlp.fc1", "mlp.c_fc"),
                             ("mlp.fc2", "mlp.c_proj")):
            w = sd[a + ours + ".weight"]  # (out, in)
            out[h + theirs + ".weight"] = w.t().contiguous()  # Conv1D: (in, out)
            out[h + theirs + ".bias"] = bias(a + ours + ".bias", w.shape[0])
    if not c.tie_weights:
        out["lm_head.weight"] = sd["head.weight"].clone()
    return out


def export(model: DialogueGPT, meta: dict[str, Any], out: Path) -> list[Path]:
    """Write ``config.json``, ``model.safetensors`` and (for a pretrained tokenizer) ``tokenizer.json``
    into ``out`` (an empty directory); the files written."""
    from safetensors.torch import save_file

    from attnlab.data.tokenizer import MyTokenizer

    written = [out / "config.json", out / "model.safetensors"]
    written[0].write_text(json.dumps(hf_config(model), indent=2) + "\n", encoding="utf-8")
    save_file(hf_state(model), str(written[1]), metadata={"format": "pt"})
    tok = MyTokenizer.from_dict(meta.get("tokenizer")) if meta.get("tokenizer") else None
    save = getattr(tok, "save", None)
    if save is not None:
        written += save(out)
    return written
