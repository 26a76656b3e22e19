"""The training engine: one loop (`fit`) for every task, checkpoints, device/precision, DDP.

```python
from attnlab.engine import TrainConfig, fit, load_checkpoint
from attnlab.data.batching import TensorBatches
metrics = fit(model, loss_fn, TensorBatches(train, 64), TensorBatches(val, 64, shuffle=False),
              cfg.train, run_dir, meta={"task": "toy", ...})
```
"""

from attnlab.device import autocast_context, resolve_precision, select_device, training_device
from attnlab.engine.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from attnlab.engine.config import TrainConfig, monitor_mode
from attnlab.engine.evaluate import evaluate
from attnlab.engine.loop import fit
from attnlab.engine.rng import seed_everything

__all__ = [
    "TrainConfig", "monitor_mode", "fit", "evaluate", "load_checkpoint", "save_checkpoint", "Checkpoint",
    "select_device", "training_device", "autocast_context", "resolve_precision", "seed_everything",
]
