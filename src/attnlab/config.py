"""Dataclass configs: named presets, ``--set key=value`` overrides and a JSON round trip.

A config is a (possibly nested) dataclass whose fields carry type annotations. Presets live on
the top-level class as dotted overrides::

    @dataclass
    class ToyConfig:
        model: ToyModelConfig = field(default_factory=ToyModelConfig)
        train: TrainConfig = field(default_factory=TrainConfig)
        PRESETS: ClassVar[dict[str, dict]] = {"tiny": {"model.num_layers": 1, "train.epochs": 2}}
        DEFAULT_PRESET: ClassVar[str] = "tiny"

    cfg = build_config(ToyConfig, "tiny", ["train.lr=1e-3", "model.dim=64"])

A class may also name the presets sized for a GPU, each with the preset to use on a CPU
(``GPU_PRESETS: ClassVar[dict[str, str]] = {"char-gpu": "char-cpu"}``): :func:`cpu_counterpart`.

Values given on the command line are strings, parsed by the field's annotation: ``bool``,
``int``, ``float``, ``str``, ``Optional[X]`` / ``X | None`` (``none`` or ``null``),
``tuple[X, ...]`` (comma-separated) and ``Literal[...]``. Anything else is a user error that
names the key, the expected type and the valid choices.

Ranges are part of the type: ``epochs: Annotated[int, Range(ge=1)] = 10``. A float is never
NaN or infinite. :func:`validate` checks every field of a built config against its range, and
calls the ``check()`` method of any section that has rules across fields (``dim`` divisible by
``num_heads``); :func:`build_config` and :func:`config_from_dict` validate what they return.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Annotated, Any, Literal, TypeVar, Union

from attnlab.errors import AttnlabError

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}
_NONE = {"none", "null"}


# --------------------------------------------------------------------------- ranges
@dataclasses.dataclass(frozen=True)
class Range:
    """Bounds of a number field, used as ``Annotated[int, Range(ge=1)]``."""

    ge: float | None = None  # value >= ge
    gt: float | None = None  # value > gt
    le: float | None = None  # value <= le
    lt: float | None = None  # value < lt

    def describe(self) -> str:
        def show(v: float) -> str:
            return f"{int(v):,}" if float(v).is_integer() and abs(v) >= 1000 else f"{v:g}"

        parts = [f"{op} {show(v)}" for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
                 if v is not None]
        return " and ".join(parts)

    def holds(self, v: float) -> bool:
        return ((self.ge is None or v >= self.ge) and (self.gt is None or v > self.gt)
                and (self.le is None or v <= self.le) and (self.lt is None or v < self.lt))


# Named ranges for the fields every config has. The upper bounds keep a typo (an extra zero or
# three) from reaching an allocation; a real model far beyond them is not a CPU-laptop model.
Count = Annotated[int, Range(ge=1, le=2**24)]  # sizes, widths, steps, batch sizes
Size = Annotated[int, Range(ge=1, le=2**20)]  # model widths and lengths
Layers = Annotated[int, Range(ge=1, le=1024)]
NonNegative = Annotated[int, Range(ge=0, le=2**24)]
Seed = Annotated[int, Range(ge=0, lt=2**63)]
Rate = Annotated[float, Range(ge=0, lt=1)]  # dropout, label smoothing
Fraction = Annotated[float, Range(gt=0, lt=1)]  # a share of the data


class _OutOfRange(AttnlabError):
    """A value of the right type outside its :class:`Range`."""


def _split_annotated(tp: Any) -> tuple[Any, Range | None]:
    """``Annotated[X, Range(...)]`` -> ``(X, Range)``; any other type -> ``(tp, None)``."""
    if typing.get_origin(tp) is Annotated:
        base, *extras = typing.get_args(tp)
        return base, next((e for e in extras if isinstance(e, Range)), None)
    return tp, None


# --------------------------------------------------------------------------- introspection
def _hints(cls: type) -> dict[str, Any]:
    """Resolved annotations of a dataclass (works with ``from __future__ import annotations``)."""
    return typing.get_type_hints(cls, include_extras=True)


def _fields(cls: type) -> dict[str, Any]:
    """Field name -> resolved type, for the dataclass fields only (ClassVars excluded)."""
    hints = _hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def config_keys(cls: type, prefix: str = "") -> dict[str, Any]:
    """All settable dotted keys of a config class -> their type annotation."""
    out: dict[str, Any] = {}
    for name, tp in _fields(cls).items():
        if _is_dataclass_type(tp):
            out.update(config_keys(tp, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = tp
    return out


def type_name(tp: Any) -> str:
    """A readable name for an annotation: ``float``, ``int >= 1 or None``, ``one of 'a', 'b'``."""
    tp, bounds = _split_annotated(tp)
    if bounds is not None:
        return f"{type_name(tp)} {bounds.describe()}"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item, bounds = _split_annotated(args[0])
            each = f", each {bounds.describe()}" if bounds is not None else ""
            return f"comma-separated {type_name(item)}s{each}"
        return "comma-separated (" + ", ".join(type_name(a) for a in args) + ")"
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


# --------------------------------------------------------------------------- value parsing
def _bad(key: str, tp: Any, value: Any) -> AttnlabError:
    msg = f"config key '{key}' expects {type_name(tp)}, got {value!r}"
    if typing.get_origin(tp) is Literal:
        close = difflib.get_close_matches(str(value), [str(a) for a in typing.get_args(tp)], n=1)
        if close:
            msg += f"; did you mean '{close[0]}'?"
    return AttnlabError(msg)


def parse_value(key: str, tp: Any, value: Any) -> Any:
    """Convert ``value`` (a command-line string or a JSON value) to annotation ``tp``.

    Raises ``AttnlabError`` naming the key, the expected type and the valid choices.
    """
    base, bounds = _split_annotated(tp)
    if bounds is not None:
        parsed = parse_value(key, base, value)
        if parsed is not None and not bounds.holds(parsed):
            raise _OutOfRange(f"config key '{key}' must be {bounds.describe()}, got {parsed!r}")
        return parsed
    origin = typing.get_origin(tp)
    text = value.strip() if isinstance(value, str) else None
    if origin in (Union, types.UnionType):
        return _parse_union(key, tp, value, text)
    if origin is Literal:
        for choice in typing.get_args(tp):
            if value == choice or (text is not None and text == str(choice)):
                return choice
        raise _bad(key, tp, value)
    if origin is tuple or tp is tuple:
        return _parse_tuple(key, tp, value, text)
    parse = _SCALARS.get(tp)
    if parse is None:
        raise AttnlabError(f"config key '{key}' has an unsupported type {type_name(tp)}")
    result = parse(value, text)
    if result is _INVALID:
        raise _bad(key, tp, value)
    if isinstance(result, float) and not math.isfinite(result):
        raise AttnlabError(f"config key '{key}' must be a finite number, got {value!r}")
    return result


def _parse_union(key: str, tp: Any, value: Any, text: str | None) -> Any:
    """``X | Y | None``: ``none``/``null`` for None, else the first member that parses."""
    args = typing.get_args(tp)
    if value is None or (text is not None and text.lower() in _NONE):
        if type(None) in args:
            return None
        raise _bad(key, tp, value)
    out_of_range: AttnlabError | None = None
    for arg in args:
        if arg is type(None):
            continue
        try:
            return parse_value(key, arg, value)
        except _OutOfRange as exc:  # the right type, out of its range: say so, not "expects ..."
            out_of_range = AttnlabError(f"{exc}{' (or none)' if type(None) in args else ''}")
        except AttnlabError:
            pass
    raise out_of_range or _bad(key, tp, value)


def _parse_tuple(key: str, tp: Any, value: Any, text: str | None) -> tuple[Any, ...]:
    """``tuple[X, ...]`` or ``tuple[X, Y]`` from ``"a,b"`` or a JSON list."""
    args = typing.get_args(tp)
    if text is not None:
        body = text.strip("()[] ")
        items: list[Any] = [s.strip() for s in body.split(",")] if body else []
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _bad(key, tp, value)
    if not args:
        return tuple(items)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(parse_value(key, args[0], item) for item in items)
    if len(items) != len(args):
        raise _bad(key, tp, value)
    return tuple(parse_value(key, a, item) for a, item in zip(args, items))


_INVALID = object()  # what a scalar parser returns for a value it cannot convert


def _to_bool(value: Any, text: str | None) -> Any:
    if isinstance(value, bool):
        return value
    if text is not None and text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    return _INVALID


def _to_int(value: Any, text: str | None) -> Any:
    if isinstance(value, bool):
        return _INVALID
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if text is None:
        return _INVALID
    try:
        return int(text.replace("_", ""))
    except ValueError:
        pass
    try:  # "1e4" is a convenient way to write 10000
        whole = float(text)
    except ValueError:
        return _INVALID
    return int(whole) if whole.is_integer() else _INVALID


def _to_float(value: Any, text: str | None) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return float(text) if text is not None else _INVALID
    except ValueError:
        return _INVALID


_SCALARS: dict[Any, Any] = {
    bool: _to_bool,
    int: _to_int,
    float: _to_float,
    str: lambda value, text: value if isinstance(value, str) else _INVALID,
    Any: lambda value, text: value,
}


# --------------------------------------------------------------------------- overrides
def _unknown_key(cls: type, key: str) -> AttnlabError:
    valid = sorted(config_keys(cls))
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return AttnlabError(
        f"unknown config key '{key}'{hint} (valid keys: {', '.join(valid)}; see --print-config)"
    )


def set_value(cfg: Any, key: str, value: Any) -> None:
    """Set dotted ``key`` on config ``cfg`` in place, parsing ``value`` by the field's type."""
    parts = key.split(".")
    target = cfg
    for i, part in enumerate(parts):
        fields = _fields(type(target))
        if part not in fields:
            raise _unknown_key(type(cfg), key)
        tp = fields[part]
        if i < len(parts) - 1:
            if not _is_dataclass_type(tp):
                raise _unknown_key(type(cfg), key)
            target = getattr(target, part)
        elif _is_dataclass_type(tp):
            sub = sorted(f"{key}.{k}" for k in config_keys(tp))
            raise AttnlabError(
                f"config key '{key}' is a section; set one of its fields: {', '.join(sub)}"
            )
        else:
            setattr(target, part, parse_value(key, tp, value))


def validate(cfg: T, prefix: str = "") -> T:
    """Check every field of ``cfg`` against its type and range, then each section's ``check()``.

    Raises :class:`AttnlabError` naming the first bad key (``prefix`` + its name); returns ``cfg``.
    """
    for name, tp in _fields(type(cfg)).items():
        value = getattr(cfg, name)
        if _is_dataclass_type(tp):
            validate(value, f"{prefix}{name}.")
        else:
            parse_value(f"{prefix}{name}", tp, value)
    check = getattr(cfg, "check", None)
    if callable(check):
        check()
    return cfg


def apply_overrides(cfg: T, overrides: list[str] | None) -> T:
    """Apply ``key=value`` strings (``--set``) to ``cfg`` in place and return it."""
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise AttnlabError(f"--set expects KEY=VALUE (e.g. train.lr=1e-3), got {item!r}")
        set_value(cfg, key.strip(), value)
    return cfg


def presets(cls: type) -> dict[str, dict]:
    """The named presets of a config class (``{}`` when it defines none)."""
    return dict(getattr(cls, "PRESETS", {}) or {})


def cpu_counterpart(cls: type, preset: str | None) -> str | None:
    """The preset to use on a CPU when ``preset`` is one of ``cls``'s GPU presets (``GPU_PRESETS``),
    else None."""
    return (getattr(cls, "GPU_PRESETS", {}) or {}).get(preset)


def build_config(cls: type[T], preset: str | None = None, overrides: list[str] | None = None) -> T:
    """Defaults of ``cls``, then preset ``preset`` (or ``cls.DEFAULT_PRESET``), then ``overrides``."""
    cfg = cls()
    table = presets(cls)
    name = preset if preset is not None else getattr(cls, "DEFAULT_PRESET", None)
    if name is not None:
        if name not in table:
            close = difflib.get_close_matches(name, list(table), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise AttnlabError(
                f"unknown preset '{name}'{hint} (choose from: {', '.join(table) or 'none'}; "
                "list them with --list-presets)"
            )
        for key, value in table[name].items():
            set_value(cfg, key, value)
    return validate(apply_overrides(cfg, overrides))


# --------------------------------------------------------------------------- JSON round trip
def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config (tuples become lists)."""
    return dataclasses.asdict(cfg)


def config_from_dict(cls: type[T], data: dict[str, Any], _prefix: str = "") -> T:
    """Rebuild a config from :func:`config_to_dict` output; unknown keys and bad types raise."""
    if not isinstance(data, dict):
        raise AttnlabError(f"config section '{_prefix.rstrip('.') or '<root>'}' must be an object")
    fields = _fields(cls)
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{_prefix}{name}"
        if name not in fields:
            raise _unknown_key(cls, name) if not _prefix else AttnlabError(
                f"unknown config key '{key}' (valid: {', '.join(_prefix + k for k in fields)})"
            )
        tp = fields[name]
        if _is_dataclass_type(tp):
            kwargs[name] = config_from_dict(tp, value, f"{key}.")
        else:
            kwargs[name] = parse_value(key, tp, value)
    cfg = cls(**kwargs)
    return validate(cfg) if not _prefix else cfg


def describe(cfg: Any) -> str:
    """``key = value  # type`` lines of every field, for ``--print-config``."""
    lines = []
    for key, tp in config_keys(type(cfg)).items():
        value: Any = cfg
        for part in key.split("."):
            value = getattr(value, part)
        lines.append(f"{key} = {value!r}  # {type_name(tp)}")
    return "\n".join(lines)
