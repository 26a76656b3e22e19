"""Configs: presets, --set parsing by annotation, errors that name key/type/choices, JSON round trip."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import pytest

from attnlab.config import (
    apply_overrides,
    build_config,
    config_from_dict,
    config_keys,
    config_to_dict,
    describe,
    parse_value,
)
from attnlab.engine import TrainConfig
from attnlab.errors import AttnlabError


@dataclass
class ModelCfg:
    num_layers: int = 2
    dim: int = 64
    dropout: float = 0.1
    bias: bool = True
    name: str = "base"
    norm: Literal["layer", "rms"] = "layer"
    patch: tuple[int, int] = (4, 4)
    widths: tuple[int, ...] = (8, 16)
    max_len: int | None = None


@dataclass
class Cfg:
    model: ModelCfg = field(default_factory=ModelCfg)
    train: TrainConfig = field(default_factory=TrainConfig)
    PRESETS: ClassVar[dict[str, dict]] = {"tiny": {"model.num_layers": 1, "train.epochs": 2},
                                          "big": {"model.dim": 512, "train.lr": 3e-4}}
    DEFAULT_PRESET: ClassVar[str] = "tiny"


def test_defaults_preset_then_overrides():
    assert build_config(Cfg).model.num_layers == 1  # DEFAULT_PRESET applied
    cfg = build_config(Cfg, "big", ["train.lr=1e-3", "model.num_layers=4", "model.bias=false",
                                    "model.dropout=0", "model.norm=rms", "model.patch=2,8", "model.widths=(1, 2, 3)",
                                    "model.max_len=128", "train.max_steps=1e4", "train.grad_clip=none",
                                    "model.name=a=b"])
    assert cfg.train.lr == 1e-3 and cfg.model.dim == 512 and cfg.model.num_layers == 4
    assert cfg.model.bias is False and cfg.model.dropout == 0.0 and isinstance(cfg.model.dropout, float)
    assert cfg.model.norm == "rms" and cfg.model.patch == (2, 8) and cfg.model.widths == (1, 2, 3)
    assert cfg.model.max_len == 128 and cfg.train.max_steps == 10000 and cfg.train.grad_clip is None
    assert cfg.model.name == "a=b"  # only the first '=' separates key and value
    assert apply_overrides(cfg, ["model.max_len=null"]).model.max_len is None


@pytest.mark.parametrize("override,words", [
    ("train.lrr=1", "unknown config key 'train.lrr'; did you mean 'train.lr'"),
    ("nope.lr=1", "unknown config key 'nope.lr'"),
    ("train.lr=fast", "'train.lr' expects float, got 'fast'"),
    ("model.num_layers=2.5", "'model.num_layers' expects int"),
    ("model.bias=maybe", "'model.bias' expects bool"),
    ("model.norm=rsm", "expects one of 'layer', 'rms', got 'rsm'; did you mean 'rms'"),
    ("model.patch=1,2,3", "expects comma-separated (int, int)"),
    ("train.precision=bf61", "one of 'auto', 'bf16', 'fp16', 'fp32'"),
    ("model=3", "is a section; set one of its fields: model.bias"),
    ("train.lr", "--set expects KEY=VALUE"),
    ("model.dim=none", "expects int, got 'none'"),
])
def test_bad_overrides_name_key_type_and_choices(override, words):
    with pytest.raises(AttnlabError, match=re.escape(words)) as info:
        build_config(Cfg, None, [override])
    assert "\n" not in str(info.value)  # one line for the CLI


def test_unknown_preset_suggests():
    with pytest.raises(AttnlabError, match="unknown preset 'tinny'; did you mean 'tiny'.*tiny, big"):
        build_config(Cfg, "tinny")


def test_json_round_trip():
    cfg = build_config(Cfg, "big", ["model.patch=2,2", "model.max_len=7"])
    data = json.loads(json.dumps(config_to_dict(cfg)))
    assert data["model"]["patch"] == [2, 2]
    back = config_from_dict(Cfg, data)
    assert back == cfg and back.model.patch == (2, 2)
    with pytest.raises(AttnlabError, match="unknown config key 'model.colour'"):
        config_from_dict(Cfg, {"model": {"colour": 1}})
    with pytest.raises(AttnlabError, match="'train.epochs' expects int"):
        config_from_dict(Cfg, {"train": {"epochs": "many"}})


def test_keys_and_describe():
    keys = config_keys(Cfg)
    assert "train.lr" in keys and "model.patch" in keys and "model" not in keys
    text = describe(build_config(Cfg))
    assert "train.lr = 0.001  # float" in text and "model.max_len = None  # int or None" in text


def test_parse_value_direct():
    assert parse_value("k", bool, "YES") is True and parse_value("k", int, 3.0) == 3
    assert parse_value("k", float, 2) == 2.0
    with pytest.raises(AttnlabError, match="^config key 'k' expects int, got True$"):
        parse_value("k", int, True)
