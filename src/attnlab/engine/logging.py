"""Metrics to ``metrics.jsonl`` (one JSON object per line) and TensorBoard (``run_dir/tb``)."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from attnlab.files import write_atomic, write_error


def _plain(value: Any) -> Any:
    """JSON-safe floats (0-d tensors become numbers, NaN/inf become strings JSON can hold)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


METRICS_LOG = "metrics.jsonl"


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    """The records of ``run_dir/metrics.jsonl``, in order (a line cut short by a crash is skipped)."""
    records = []
    for line in (Path(run_dir) / METRICS_LOG).read_bytes().splitlines():
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):  # cut short (or overwritten): not a record
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


class RunLogger:
    """Appends records to ``metrics.jsonl`` and mirrors numbers to TensorBoard.

    Only the main process logs (``enabled=False`` elsewhere). TensorBoard is imported lazily
    and skipped with a note if it is not installed.
    """

    def __init__(self, run_dir: Path, *, enabled: bool = True, tensorboard: bool = True) -> None:
        self.run_dir, self.path = Path(run_dir), Path(run_dir) / METRICS_LOG
        self.enabled, self.tensorboard = enabled, enabled and tensorboard
        self.writer: Any = None  # opened at the first record: a run that fails to start writes nothing

    def _open_tensorboard(self) -> None:
        self.tensorboard = False  # one try
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.run_dir / "tb"))
        except Exception as exc:  # ImportError, or a broken tensorboard install
            print(f"note: TensorBoard logging disabled ({exc})", file=sys.stderr)

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step`` (written after the checkpoint we resume from), atomically."""
        if not self.enabled or not self.path.exists():
            return
        kept = [r for r in read_records(self.path.parent) if r.get("step", 0) <= step]
        write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def log(self, step: int, metrics: dict[str, Any], **extra: Any) -> None:
        if not self.enabled:
            return
        if self.tensorboard:
            self._open_tensorboard()
        record = {"step": step, "time": round(time.time(), 3), **extra,
                  **{k: _plain(v) for k, v in metrics.items()}}
        try:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as exc:
            raise write_error(exc, self.path) from None
        if self.writer is not None:
            for key, value in record.items():
                if key not in ("step", "time") and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(key.replace("_", "/", 1), value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
