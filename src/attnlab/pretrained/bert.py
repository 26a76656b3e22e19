"""BERT and DistilBERT weights in attnlab's :class:`attnlab.models.bert.BertClassifier`, and back.

Loads ``BertModel``, ``BertForSequenceClassification``, ``BertForMaskedLM`` / ``BertForPreTraining``
(the encoder; their MLM heads are dropped) and ``DistilBertModel`` /
``DistilBertForSequenceClassification`` / ``DistilBertForMaskedLM``. Names map one to one::

    HF BERT                                          attnlab
    embeddings.word_embeddings / position_ / token_type_  word / position / token_type
    embeddings.LayerNorm                             norm
    encoder.layer.i.attention.self.{query,key,value} blocks.i.attn.qkv   ([Q; K; V] stacked on rows)
    encoder.layer.i.attention.output.dense           blocks.i.attn.W_O
    encoder.layer.i.attention.output.LayerNorm       blocks.i.norm1
    encoder.layer.i.intermediate.dense / output.dense  blocks.i.mlp.fc1 / fc2
    encoder.layer.i.output.LayerNorm                 blocks.i.norm2
    pooler.dense / classifier                        pooler / head

DistilBERT's are ``transformer.layer.i.attention.{q,k,v,out}_lin``, ``sa_layer_norm``,
``ffn.lin{1,2}``, ``output_layer_norm``, ``pre_classifier`` (-> pooler, with ReLU) and ``classifier``.
A checkpoint without a classifier (or BERT's pooler, as ``BertForMaskedLM``) gets a new one,
initialised as BERT does, and :class:`Loaded` names it (the text task's meta keeps the list in
``meta["pretrained"]["new"]``): that is the fine-tuning start. :func:`export` writes the way back,
a directory ``transformers`` loads as ``BertForSequenceClassification`` (or
``DistilBertForSequenceClassification``) with equal logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnlab.errors import AttnlabError
from attnlab.models.configs import TextModelConfig
from attnlab.pretrained.source import Source, state_dict, take

if TYPE_CHECKING:
    from torch import Tensor, nn

    from attnlab.models.bert import BertClassifier

__all__ = ["TASK", "Loaded", "loaded", "build", "export", "model_config", "labels_of", "from_hf", "to_hf", "hf_config",
           "tokenizer_meta"]

TASK = "text"
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}  # HF hidden_act -> ours
DISTIL_EPS = 1e-12  # DistilBERT's LayerNorms (fixed in transformers, not in its config)


def _get(config: dict[str, Any], key: str, default: Any = None) -> Any:
    value = config.get(key, default)
    if value is None:
        raise AttnlabError(f"config.json has no {key}; pass a BERT directory written by save_pretrained")
    return value


def model_config(config: dict[str, Any], *, max_len: int | None = None) -> TextModelConfig:
    """The ``model.name=bert`` config of a BERT / DistilBERT ``config.json`` (``max_len``: the tokens
    kept per text; default all the positions)."""
    distil = config.get("model_type") == "distilbert"
    act = str(config.get("activation" if distil else "hidden_act", "gelu"))
    if act not in ACTIVATIONS:
        raise AttnlabError(f"config.json's activation {act!r} is not supported; attnlab's BERT has "
                           f"{', '.join(ACTIVATIONS)}")
    position_kind = config.get("position_embedding_type", "absolute")
    if position_kind not in (None, "absolute"):
        raise AttnlabError(f"config.json's position_embedding_type {position_kind!r} is not supported; attnlab's BERT "
                           "has absolute (learned) positions")
    positions = int(_get(config, "max_position_embeddings", 512))
    if distil:
        m = TextModelConfig(
            name="bert", dim=int(_get(config, "dim")), num_layers=int(_get(config, "n_layers")),
            num_heads=int(_get(config, "n_heads")), mlp_dim=int(_get(config, "hidden_dim")),
            dropout=float(config.get("dropout", 0.1)), type_vocab_size=0, pooling="pre_classifier",
            norm_eps=DISTIL_EPS)
    else:
        m = TextModelConfig(
            name="bert", dim=int(_get(config, "hidden_size")), num_layers=int(_get(config, "num_hidden_layers")),
            num_heads=int(_get(config, "num_attention_heads")), mlp_dim=int(_get(config, "intermediate_size")),
            dropout=float(config.get("hidden_dropout_prob", 0.1)),
            type_vocab_size=int(config.get("type_vocab_size", 2)), pooling="pooler",
            norm_eps=float(config.get("layer_norm_eps", 1e-12)))
    m.vocab_size = int(_get(config, "vocab_size"))
    m.activation = ACTIVATIONS[act]  # type: ignore[assignment]
    m.max_positions = positions
    m.max_len = min(positions, max_len) if max_len else positions
    m.pad_id = int(config.get("pad_token_id") or 0)
    m.check()
    return m


def labels_of(config: dict[str, Any]) -> list[str]:
    """The classes' names, from ``id2label`` (else ``num_labels`` generic names; default 2)."""
    id2label = config.get("id2label")
    if isinstance(id2label, dict) and id2label:
        return [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(len(id2label))]
    return [f"LABEL_{i}" for i in range(int(config.get("num_labels", 2)))]


def _layer_names(config: dict[str, Any], i: int) -> dict[str, str]:
    """attnlab name (within block ``i``) -> the checkpoint's, for one encoder layer."""
    if config.get("model_type") == "distilbert":
        p = f"transformer.layer.{i}."
        return {"q": p + "attention.q_lin", "k": p + "attention.k_lin", "v": p + "attention.v_lin",
                "attn.W_O": p + "attention.out_lin", "norm1": p + "sa_layer_norm", "mlp.fc1": p + "ffn.lin1",
                "mlp.fc2": p + "ffn.lin2", "norm2": p + "output_layer_norm"}
    p = f"encoder.layer.{i}."
    return {"q": p + "attention.self.query", "k": p + "attention.self.key", "v": p + "attention.self.value",
            "attn.W_O": p + "attention.output.dense", "norm1": p + "attention.output.LayerNorm",
            "mlp.fc1": p + "intermediate.dense", "mlp.fc2": p + "output.dense", "norm2": p + "output.LayerNorm"}


def _normalized(state: dict[str, Tensor], config: dict[str, Any]) -> dict[str, Tensor]:
    """The checkpoint's names without the model prefix (``bert.`` / ``distilbert.``) and with the old
    ``LayerNorm.gamma`` / ``beta`` spelled ``weight`` / ``bias``."""
    prefix = "distilbert." if config.get("model_type") == "distilbert" else "bert."
    out = {}
    for name, t in state.items():
        if name.startswith(prefix):
            name = name[len(prefix):]
        if name.endswith(".gamma"):
            name = name[:-len("gamma")] + "weight"
        elif name.endswith(".beta"):
            name = name[:-len("beta")] + "bias"
        out[name] = t
    return out


def from_hf(state: dict[str, Tensor], config: dict[str, Any], source: Source, *,
            num_classes: int) -> tuple[dict[str, Tensor], list[str]]:
    """``(attnlab state dict, names of the tensors the checkpoint lacks)``: the pure mapping.
    Missing encoder tensors and any tensor of the wrong shape are errors that name the tensor;
    a missing pooler or classifier is left to the model's initialisation and listed."""
    import torch

    m = model_config(config)
    sd = _normalized(state, config)
    d, V = m.dim, m.vocab_size
    out: dict[str, Tensor] = {
        "word.weight": take(sd, "embeddings.word_embeddings.weight", (V, d), source),
        "position.weight": take(sd, "embeddings.position_embeddings.weight", (m.max_positions, d), source),
        "norm.weight": take(sd, "embeddings.LayerNorm.weight", (d,), source),
        "norm.bias": take(sd, "embeddings.LayerNorm.bias", (d,), source),
    }
    if m.type_vocab_size:
        out["token_type.weight"] = take(sd, "embeddings.token_type_embeddings.weight", (m.type_vocab_size, d), source)
    shapes = {"attn.W_O": (d, d), "norm1": (d,), "mlp.fc1": (m.mlp_dim, d), "mlp.fc2": (d, m.mlp_dim), "norm2": (d,)}
    biases = {"attn.W_O": d, "norm1": d, "mlp.fc1": m.mlp_dim, "mlp.fc2": d, "norm2": d}
    for i in range(m.num_layers):
        names = _layer_names(config, i)
        q, k, v = (take(sd, names[x] + ".weight", (d, d), source) for x in "qkv")
        qb, kb, vb = (take(sd, names[x] + ".bias", (d,), source) for x in "qkv")
        out[f"blocks.{i}.attn.qkv.weight"] = torch.cat([q, k, v])  # (3d, d): [W_Q; W_K; W_V]
        out[f"blocks.{i}.attn.qkv.bias"] = torch.cat([qb, kb, vb])  # (3d,)
        for ours, shape in shapes.items():
            out[f"blocks.{i}.{ours}.weight"] = take(sd, names[ours] + ".weight", shape, source)
            out[f"blocks.{i}.{ours}.bias"] = take(sd, names[ours] + ".bias", (biases[ours],), source)
    pooler, head = ("pre_classifier", "classifier") if m.pooling == "pre_classifier" else ("pooler.dense", "classifier")
    # another task's "classifier" (per token, or a multiple-choice score) is not a sequence classifier
    sequence_head = str((config.get("architectures") or ["?ForSequenceClassification"])[0]).endswith(
        "ForSequenceClassification")
    new = []
    for ours, theirs, shape in (("pooler", pooler, (d, d)), ("head", head, (num_classes, d))):
        if f"{theirs}.weight" in sd and (ours != "head" or sequence_head):
            out[f"{ours}.weight"] = take(sd, f"{theirs}.weight", shape, source)
            out[f"{ours}.bias"] = take(sd, f"{theirs}.bias", shape[:1], source)
        else:
            new.append(theirs)
    return out, new


def tokenizer_meta(directory: Path) -> dict[str, Any] | None:
    """``meta["tokenizer"]`` for a model directory's WordPiece (None when it ships none)."""
    from attnlab.data.wordpiece import WordPiece, has_wordpiece

    if not has_wordpiece(directory):
        return None
    return {"kind": "wordpiece", "json": WordPiece.from_dir(directory).to_json()}


@dataclass
class Loaded:
    """A source's weights in a :class:`BertClassifier`, and what a task's meta needs about them."""

    model: BertClassifier
    config: TextModelConfig  # model.name=bert with the checkpoint's shape
    labels: list[str]  # the classes, in the order of the head's outputs
    new: list[str]  # the checkpoint's missing parts, newly initialised (pooler, classifier)


def loaded(source: Source, *, m: TextModelConfig | None = None, labels: list[str] | None = None) -> Loaded:
    """The source's weights in a new model. ``m`` (a fine-tuning run's config) keeps its max_len and
    dropout over the checkpoint's; ``labels`` (a run's classes) replace the checkpoint's, with a new
    head when their number differs. New parts are initialised from the current random state."""
    from attnlab.models.bert import build_bert

    config = source.config
    arch = model_config(config)
    if m is not None:
        arch.max_len, arch.dropout = min(m.max_len, arch.max_positions), m.dropout
    theirs = labels_of(config)
    names = list(labels) if labels is not None else theirs
    mapped, new = from_hf(state_dict(source), config, source, num_classes=len(theirs))
    if len(names) != len(theirs):
        mapped = {k: v for k, v in mapped.items() if not k.startswith("head.")}
        new = sorted(set(new) | {"classifier"})
    model = build_bert(arch, arch.vocab_size, num_classes=len(names))
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    assert not unexpected and all(k.startswith(("pooler.", "head.")) for k in missing), (missing, unexpected)
    return Loaded(model, arch, names, new)


def build(source: Source) -> BertClassifier:
    """The family contract: the source's model (eval mode, CPU); new parts drawn from seed 0."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return loaded(source).model.eval()


# --------------------------------------------------------------------------- export
def hf_config(m: TextModelConfig, labels: list[str]) -> dict[str, Any]:
    """The ``config.json`` of a ``BertForSequenceClassification`` (or, for a DistilBERT-shaped model,
    ``DistilBertForSequenceClassification``) with ``m``'s shape."""
    act = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh"}[m.activation]
    eps = m.norm_eps if m.norm_eps is not None else 1e-12
    common = {"vocab_size": m.vocab_size, "max_position_embeddings": m.max_positions, "pad_token_id": m.pad_id,
              "id2label": {str(i): name for i, name in enumerate(labels)},
              "label2id": {name: i for i, name in enumerate(labels)}}
    if _distil_shaped(m):
        return {"architectures": ["DistilBertForSequenceClassification"], "model_type": "distilbert", **common,
                "dim": m.dim, "n_layers": m.num_layers, "n_heads": m.num_heads, "hidden_dim": m.mlp_dim,
                "activation": act, "dropout": m.dropout, "attention_dropout": m.dropout,
                "seq_classif_dropout": m.dropout, "sinusoidal_pos_embds": False}
    return {"architectures": ["BertForSequenceClassification"], "model_type": "bert", **common,
            "hidden_size": m.dim, "num_hidden_layers": m.num_layers, "num_attention_heads": m.num_heads,
            "intermediate_size": m.mlp_dim, "hidden_act": act, "hidden_dropout_prob": m.dropout,
            "attention_probs_dropout_prob": m.dropout, "type_vocab_size": max(1, m.type_vocab_size),
            "layer_norm_eps": eps, "position_embedding_type": "absolute"}


def _distil_shaped(m: TextModelConfig) -> bool:
    return m.pooling == "pre_classifier"


def to_hf(state: dict[str, Tensor], m: TextModelConfig) -> dict[str, Tensor]:
    """attnlab's state dict -> the ``*ForSequenceClassification`` names of :func:`hf_config` (the inverse
    of :func:`from_hf`; a BERT without token types gets a zero table of one type, adding nothing)."""
    import torch

    distil = _distil_shaped(m)
    if distil and m.type_vocab_size:
        raise AttnlabError("a bert model with model.pooling=pre_classifier and token types has no transformers "
                           "counterpart (DistilBERT has no token types); export a model with model.type_vocab_size=0")
    if distil and (m.norm_eps or 1e-12) != DISTIL_EPS:
        raise AttnlabError(f"DistilBERT's LayerNorm eps is fixed at {DISTIL_EPS:g}, this model's is {m.norm_eps:g}; "
                           "it has no transformers counterpart")
    config = {"model_type": "distilbert" if distil else "bert"}
    prefix = "distilbert." if distil else "bert."
    d = m.dim
    out = {prefix + "embeddings.word_embeddings.weight": state["word.weight"],
           prefix + "embeddings.position_embeddings.weight": state["position.weight"],
           prefix + "embeddings.LayerNorm.weight": state["norm.weight"],
           prefix + "embeddings.LayerNorm.bias": state["norm.bias"]}
    if not distil:
        out[prefix + "embeddings.token_type_embeddings.weight"] = (
            state["token_type.weight"] if m.type_vocab_size else torch.zeros(1, d))
    for i in range(m.num_layers):
        names = _layer_names(config, i)
        for part in ("weight", "bias"):
            q, k, v = state[f"blocks.{i}.attn.qkv.{part}"].split(d)  # [W_Q; W_K; W_V] rows
            for x, t in zip("qkv", (q, k, v), strict=True):
                out[f"{prefix}{names[x]}.{part}"] = t
            for ours in ("attn.W_O", "norm1", "mlp.fc1", "mlp.fc2", "norm2"):
                out[f"{prefix}{names[ours]}.{part}"] = state[f"blocks.{i}.{ours}.{part}"]
    pooler = "pre_classifier" if distil else prefix + "pooler.dense"
    for part in ("weight", "bias"):
        out[f"{pooler}.{part}"] = state[f"pooler.{part}"]
        out[f"classifier.{part}"] = state[f"head.{part}"]
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in out.items()}


def export(model: nn.Module, meta: dict[str, Any], out: Path) -> list[Path]:
    """Write ``config.json``, ``model.safetensors`` and the tokenizer (when the run has one) into
    ``out``: a directory ``transformers`` loads as ``BertForSequenceClassification`` (or
    ``DistilBertForSequenceClassification``)."""
    from safetensors.torch import save

    from attnlab.config import config_from_dict
    from attnlab.data.wordpiece import WordPiece
    from attnlab.files import make_folder, write_json, writing_atomically

    m = config_from_dict(TextModelConfig, meta["config"]["model"])
    if m.name != "bert":
        raise AttnlabError(f"the text '{m.name}' model has no Hugging Face counterpart; only text runs with --model "
                           "bert export (BertForSequenceClassification)")
    labels = list(meta.get("labels") or ["neg", "pos"])
    tensors = to_hf(model.state_dict(), m)
    config = hf_config(m, labels)
    make_folder(out)
    with writing_atomically(out / "model.safetensors") as f:
        f.write(save(tensors, metadata={"format": "pt"}))
    write_json(out / "config.json", config)
    written = [out / "config.json", out / "model.safetensors"]
    tok = meta.get("tokenizer")
    if isinstance(tok, dict) and tok.get("kind") == "wordpiece":
        written += WordPiece.from_json(tok["json"]).save(out)
    return written
