"""Flat AdamW: torch's AdamW with each parameter group held in one contiguous buffer.

A small model's optimizer step is mostly the cost of calls, not of arithmetic: on the CPU,
torch's AdamW makes about ten calls per parameter tensor, 270 for the 27 tensors of the
``char-cpu`` GPT. Here the parameters of a group are views into one flat tensor, and so are
AdamW's two moments. A step runs :mod:`attnlab.engine.adamw_kernel`'s C++ step on the flat tensors
(one pass over memory, reading the gradients where autograd left them), or, where that cannot
serve, gathers the gradients into one flat gradient (one call) and runs torch's own AdamW function
on the flat tensors: ten calls per group.

Every element goes through the same operations as in ``torch.optim.AdamW``, so the weights come
out bit-identical either way (``tests/engine/test_flat_adamw.py`` pins it). ``state_dict()`` has torch's
per-parameter layout, so a checkpoint of either optimizer resumes in the other.

What stays per-parameter:

* a parameter that two modules share (a tied output layer) keeps its own storage, because
  safetensors will not save a view that two names share inside a bigger buffer; so does one
  that is not contiguous (channels-last). Each joins the flat step as one more tensor;
* a step where some parameter has no gradient switches the optimizer, for good, to torch's
  per-parameter step, which skips such parameters (the flat step would not);
* groups of large tensors are not flattened (:data:`FLAT_MEAN_NUMEL`): there the calls cost
  little and the gathering copy would not.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, cast

import torch
from torch import Tensor, nn

from attnlab.engine import adamw_kernel

__all__ = ["FlatAdamW", "FLAT_MEAN_NUMEL", "shared_parameters"]

# A group is flattened when its tensors hold at most this many elements on average. Above that,
# the flat passes no longer stay in the cache: AdamW on 32 tensors (2-vCPU AMD EPYC, 2 threads,
# 30 alternating steps) was 2.0x faster flat at 16,384 elements each, 2.1x at 32,768, 1.17x at
# 98,304, 1.06x at 131,072 and 0.76x at 196,608 (256 tensors: 1.5x, 2.0x, 1.07x, 0.88x, 0.80x).
FLAT_MEAN_NUMEL = 65_536


@dataclass
class _FlatGroup:
    """One parameter group's flat buffers. ``params`` are views into ``param``, in order;
    ``apart`` are the group's parameters that keep their own storage."""

    params: list[nn.Parameter]
    param: Tensor
    apart: list[nn.Parameter] = field(default_factory=list)
    grad: Tensor | None = None  # allocated where torch's step runs (the C++ step reads the pieces in place)
    grad_views: list[Tensor] = field(default_factory=list)  # ``grad`` cut like ``params``
    exp_avg: Tensor | None = None
    exp_avg_sq: Tensor | None = None
    step: Tensor | None = None  # one step count for every flattened parameter

    def __post_init__(self) -> None:
        self.offsets = [0, *accumulate(p.numel() for p in self.params)][:-1]  # where each starts in ``param``
        self.addresses = [self.param.data_ptr() + o * self.param.element_size() for o in self.offsets]

    def views(self, flat: Tensor) -> list[Tensor]:
        """``flat`` cut into tensors shaped like ``params``."""
        return [flat[o:o + p.numel()].view_as(p) for p, o in zip(self.params, self.offsets)]  # (n,) -> p's shape

    def in_place(self) -> bool:
        """Whether every flattened parameter still is its view of ``param`` (a ``.to()`` or a
        ``.data`` assignment elsewhere would have given it new storage)."""
        return all(p.data_ptr() == a for p, a in zip(self.params, self.addresses))

    def new_grad(self) -> None:
        """Allocate the flat gradient, and its views."""
        self.grad = torch.empty_like(self.param)
        self.grad_views = self.views(self.grad)


class FlatAdamW(torch.optim.AdamW):
    """``torch.optim.AdamW`` over the same groups, bit-identical, in fewer calls (module docstring).

    ``keep_apart``: parameters that must keep their own storage (shared ones:
    :func:`shared_parameters`). Build it after the model has moved to its device: moving it
    later gives its parameters new storage, and the optimizer then falls back to the
    per-parameter step (still correct).
    """

    def __init__(self, params: Iterable[Any], *, keep_apart: Collection[Tensor] = (), **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        apart_ids = {id(p) for p in keep_apart}
        self._flat: list[_FlatGroup] | None = None
        if all(_flattenable(g) for g in self.param_groups):
            groups = [_flatten(g["params"], apart_ids) for g in self.param_groups]
            self._flat = groups if any(f.params for f in groups) else None
        every = [p for g in self.param_groups for p in g["params"]]
        if _c_step_groups(self.param_groups) and adamw_kernel.served(every):
            adamw_kernel.kernel()  # built (the first time) or loaded now, before a training clock starts

    @property
    def flat(self) -> bool:
        """Whether steps run on the flat buffers (False after a fallback, or when no group was
        flattened)."""
        return self._flat is not None

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """One AdamW step: on the flat buffers, or per parameter (no group flattened, or after a
        fallback): in C++ where it serves, else torch's own step."""
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        else:
            loss = None
        if self._flat is not None and not self._ready():
            self._unflatten()
        if self._flat is None:
            if not self._step_each_in_cpp():
                super().step()
            return loss
        for group, flat in zip(self.param_groups, self._flat):
            self._flat_step(group, flat)
        return loss

    def _ready(self) -> bool:
        """Whether this step can run flat: every parameter has a gradient (torch skips those
        without one) and is still a view of its buffer."""
        assert self._flat is not None
        return (all(p.grad is not None for g in self.param_groups for p in g["params"])
                and all(f.in_place() for f in self._flat))

    def _step_each_in_cpp(self) -> bool:
        """torch's per-parameter step (parameters without a gradient skipped, state created at a
        parameter's first step), each tensor in one C++ pass; False, having done nothing, where the
        C++ step does not serve every group and tensor."""
        stepped = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        states = [self.state[p] for p in stepped if p in self.state]
        tensors = [*stepped, *(p.grad for p in stepped), *(s[k] for s in states for k in ("exp_avg", "exp_avg_sq"))]
        if not (_c_step_groups(self.param_groups) and adamw_kernel.served(tensors)):
            return False
        module = adamw_kernel.kernel()
        if module is None:
            return False
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:  # as torch's AdamW creates it
                    state.update(step=_zero_step(), exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                adamw_kernel.adamw_step(module, p, [p.grad], state["exp_avg"], state["exp_avg_sq"], state["step"],
                                        **_settings(group))
        return True

    def _flat_step(self, group: dict[str, Any], flat: _FlatGroup) -> None:
        if flat.step is None:
            self._init_state(flat)
        # (param, its gradient in pieces, exp_avg, exp_avg_sq, step) of each tensor AdamW steps: the
        # flat one, if any, then those kept apart (_ready() saw every gradient)
        tensors: list[tuple[Any, ...]] = []
        if flat.params:
            tensors.append((flat.param, [p.grad for p in flat.params], flat.exp_avg, flat.exp_avg_sq, flat.step))
        for p in flat.apart:
            state = self.state[p]
            tensors.append((p, [p.grad], state["exp_avg"], state["exp_avg_sq"], state["step"]))
        serve = _c_step_settings(group) and all(adamw_kernel.served([t[0], *t[1], t[2], t[3]]) for t in tensors)
        module = adamw_kernel.kernel() if serve else None  # not built for tensors it cannot step (a GPU's)
        if module is not None:
            for param, grads, exp_avg, exp_avg_sq, step in tensors:  # one pass each, reading the pieces in place
                adamw_kernel.adamw_step(module, param, grads, exp_avg, exp_avg_sq, step, **_settings(group))
            return
        if flat.params:  # torch's step takes one gradient per tensor: gather the flat one
            if flat.grad is None:
                flat.new_grad()
            torch._foreach_copy_(flat.grad_views, cast(list[Tensor], tensors[0][1]))  # one call
        rows = [(t[0], flat.grad if t[0] is flat.param else t[1][0], *t[2:]) for t in tensors]
        params, grads, exp_avgs, exp_avg_sqs, steps = (list(column) for column in zip(*rows))
        adamw_kernel.torch_adamw(params, grads, exp_avgs, exp_avg_sqs, steps, foreach=group["foreach"],
                                 **_settings(group))

    def _init_state(self, flat: _FlatGroup) -> None:
        """The state torch's AdamW creates at its first step: step 0 and zero moments."""
        flat.exp_avg, flat.exp_avg_sq = torch.zeros_like(flat.param), torch.zeros_like(flat.param)
        flat.step = _zero_step()
        for p, m, v in zip(flat.params, flat.views(flat.exp_avg), flat.views(flat.exp_avg_sq)):
            self.state[p] = {"step": flat.step, "exp_avg": m, "exp_avg_sq": v}
        for p in flat.apart:
            self.state[p] = {"step": _zero_step(), "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}

    def _unflatten(self) -> None:
        """Switch to torch's per-parameter step for good: each parameter gets its own step count
        (the moments stay views of the flat buffers, which torch updates in place)."""
        assert self._flat is not None
        for flat in self._flat:
            for p in flat.params:
                if p in self.state:
                    self.state[p]["step"] = self.state[p]["step"].clone()
        self._flat = None

    def release(self) -> None:
        """Give every parameter its own storage again, and step per-parameter from now on.
        ``fit`` calls it when training ends, so that a trained model saves (safetensors refuses
        views of a bigger buffer) and moves like any other."""
        if self._flat is None:
            return
        flats = self._flat
        self._unflatten()
        with torch.no_grad():
            for flat in flats:
                for p in flat.params:
                    p.data = p.data.clone()

    def state_dict(self) -> dict[str, Any]:
        """torch's per-parameter layout (each parameter with its own step tensor)."""
        out = super().state_dict()
        out["state"] = {k: {**s, "step": s["step"].clone()} for k, s in out["state"].items()}
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load torch's per-parameter layout, then move the moments into the flat buffers (a
        state whose parameters have different step counts stays per-parameter)."""
        super().load_state_dict(state_dict)
        if self._flat is None:
            return
        for flat in self._flat:
            members = [*flat.params, *flat.apart]
            states = [self.state.get(p) for p in members]
            if not any(states):  # saved before the first step
                flat.grad = flat.exp_avg = flat.exp_avg_sq = flat.step = None
                flat.grad_views = []
                continue
            if not all(states) or len({float(s["step"]) for s in states if s}) != 1:
                self._unflatten()
                return
            flat.exp_avg, flat.exp_avg_sq = torch.empty_like(flat.param), torch.empty_like(flat.param)
            flat.step = self.state[members[0]]["step"].clone()
            for p, m, v in zip(flat.params, flat.views(flat.exp_avg), flat.views(flat.exp_avg_sq)):
                m.copy_(self.state[p]["exp_avg"])
                v.copy_(self.state[p]["exp_avg_sq"])
                self.state[p] = {"step": flat.step, "exp_avg": m, "exp_avg_sq": v}


def shared_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters that ``model`` holds under more than one name (tied weights)."""
    seen: dict[int, int] = {}
    params: dict[int, nn.Parameter] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        seen[id(p)] = seen.get(id(p), 0) + 1
        params[id(p)] = p
    return [params[i] for i, n in seen.items() if n > 1]


def _zero_step() -> Tensor:
    """A fresh step count, as torch's AdamW makes it (float64 only under a float64 default)."""
    return torch.tensor(0.0, dtype=torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32)


def _settings(group: dict[str, Any]) -> dict[str, Any]:
    """The group's AdamW settings, as :func:`~attnlab.engine.adamw_kernel.adamw_step` and
    :func:`~attnlab.engine.adamw_kernel.torch_adamw` take them."""
    beta1, beta2 = group["betas"]
    return {"lr": group["lr"], "beta1": beta1, "beta2": beta2, "weight_decay": group["weight_decay"],
            "eps": group["eps"]}


def _c_step_groups(groups: list[dict[str, Any]]) -> bool:
    """Whether the C++ step reproduces torch's for every group (:func:`_flattenable`'s plain AdamW
    settings and tensors, and :func:`_c_step_settings`)."""
    return all(_flattenable(g) and _c_step_settings(g) for g in groups)


def _c_step_settings(group: dict[str, Any]) -> bool:
    """Whether the C++ step reproduces torch's for this group's settings: its learning rate, betas,
    weight decay and eps are plain numbers (not tensors), and torch would take its single-tensor
    path (``foreach`` not asked for)."""
    numbers = (group["lr"], *group["betas"], group["weight_decay"], group["eps"])
    return not group["foreach"] and all(isinstance(x, (int, float)) for x in numbers)


def _flattenable(group: dict[str, Any]) -> bool:
    """Whether the flat step reproduces torch's for this group: plain AdamW settings, dense
    real tensors of one dtype on one device."""
    params = group["params"]
    if group["amsgrad"] or group["maximize"] or group["capturable"] or group["differentiable"] or group["fused"]:
        return False
    kinds = {(p.dtype, p.device) for p in params}
    return len(kinds) <= 1 and all(p.is_floating_point() and p.layout == torch.strided for p in params)


def _flatten(params: list[nn.Parameter], apart_ids: set[int]) -> _FlatGroup:
    """Move ``params`` into one buffer and make each a view of it, but those in ``apart_ids`` and
    those not laid out contiguously (a channels-last weight keeps its layout)."""
    keep = [id(p) in apart_ids or not p.is_contiguous() for p in params]
    flat_params = [p for p, k in zip(params, keep) if not k]
    apart = [p for p, k in zip(params, keep) if k]
    total = sum(p.numel() for p in flat_params)
    if not flat_params or total > FLAT_MEAN_NUMEL * len(flat_params):
        return _FlatGroup([], torch.empty(0), apart=list(params))  # nothing flattened
    group = _FlatGroup(flat_params, torch.empty(total, dtype=params[0].dtype, device=params[0].device), apart)
    with torch.no_grad():
        for p, view in zip(flat_params, group.views(group.param)):
            view.copy_(p)
            p.data = view
    return group
