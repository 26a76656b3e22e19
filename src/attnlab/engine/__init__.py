"""The training engine: one loop (`fit`) for every task, checkpoints, device/precision, DDP.

```python
from attnlab.engine import TrainConfig, fit, DatasetBatches, load_checkpoint
metrics = fit(model, loss_fn, train_batches, val_batches, cfg.train, run_dir, meta={"task": "toy", ...})
```
"""

from attnlab.engine.batches import DatasetBatches, TensorBatches
from attnlab.engine.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from attnlab.engine.config import TrainConfig
from attnlab.engine.device import autocast_context, resolve_precision, select_device
from attnlab.engine.loop import evaluate, fit, seed_everything

__all__ = [
    "TrainConfig", "fit", "evaluate", "DatasetBatches", "TensorBatches", "load_checkpoint",
    "save_checkpoint", "Checkpoint", "select_device", "autocast_context", "resolve_precision",
    "seed_everything",
]
