"""The training engine: one loop (`fit`) for every task, checkpoints, device/precision, DDP.

```python
from attnlab.engine import TrainConfig, fit, load_checkpoint
from attnlab.data.batching import TensorBatches
metrics = fit(model, loss_fn, TensorBatches(train, 64), TensorBatches(val, 64, shuffle=False),
              cfg.train, run_dir, meta={"task": "toy", ...})
```

Every name is imported on first use, as in :mod:`attnlab`: ``attnlab.engine.config.TrainConfig``
(what a task's config holds, and all that ``attnlab train TASK --help`` needs) loads no torch.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as the type checker sees them (a typed package)
    from attnlab.device import autocast_context, resolve_precision, select_device, training_device
    from attnlab.engine.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
    from attnlab.engine.config import TrainConfig, monitor_mode
    from attnlab.engine.evaluate import evaluate
    from attnlab.engine.loop import fit
    from attnlab.engine.rng import seed_everything

# name -> the module that defines it (imported lazily on first attribute access)
_EXPORTS = {
    "TrainConfig": "attnlab.engine.config",
    "monitor_mode": "attnlab.engine.config",
    "fit": "attnlab.engine.loop",
    "evaluate": "attnlab.engine.evaluate",
    "load_checkpoint": "attnlab.engine.checkpoint",
    "save_checkpoint": "attnlab.engine.checkpoint",
    "Checkpoint": "attnlab.engine.checkpoint",
    "select_device": "attnlab.device",
    "training_device": "attnlab.device",
    "autocast_context": "attnlab.device",
    "resolve_precision": "attnlab.device",
    "seed_everything": "attnlab.engine.rng",
}

__all__ = [
    "TrainConfig", "monitor_mode", "fit", "evaluate", "load_checkpoint", "save_checkpoint", "Checkpoint",
    "select_device", "training_device", "autocast_context", "resolve_precision", "seed_everything",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'attnlab.engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


class _Engine(types.ModuleType):
    """``attnlab.engine.evaluate`` is the function, as it was when this package imported it eagerly:
    loading the submodule of the same name (which fit does) must not rebind the package's name to
    the module, as Python's import system does for a plain package."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Engine
