"""DDP over 2 CPU processes (gloo) equals 1 process with the same global batch.

The two processes get the environment ``torchrun`` would give them (RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT), so ``fit`` takes its DDP path exactly as under ``torchrun``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import ddp_worker  # noqa: E402

WORKER = Path(__file__).with_name("ddp_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(out: Path, *args: str) -> list[subprocess.Popen]:
    """Two worker processes with the environment torchrun gives (they run until communicate())."""
    out.mkdir(exist_ok=True)
    port = _free_port()
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(out), *args], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return procs


def _wait(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out[-3000:]


def test_two_gloo_processes_match_one(tmp_path):
    single, double = tmp_path / "single", tmp_path / "double"
    single.mkdir()
    procs = _launch(double)
    ddp_worker.train(single)  # meanwhile, the single-process reference
    _wait(procs)

    one = torch.load(single / "params0.pt", weights_only=True)
    rank0 = torch.load(double / "params0.pt", weights_only=True)
    rank1 = torch.load(double / "params1.pt", weights_only=True)
    for name in one:
        torch.testing.assert_close(rank0[name], one[name], atol=1e-6, rtol=1e-5, msg=name)
        assert torch.equal(rank0[name], rank1[name]), name
    m1, m2 = (torch.load(d / "metrics0.pt", weights_only=True) for d in (single, double))
    assert m1["steps"] == m2["steps"] == 10 and m2["world_size"] == 2
    assert abs(m1["val_loss"] - m2["val_loss"]) < 1e-5
    assert (double / "run" / "checkpoints" / "latest").exists()  # written by rank 0


def test_two_processes_resume_bit_exactly_with_dropout(tmp_path):
    # each rank draws its own dropout masks: the checkpoint keeps every rank's random streams
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    _wait(_launch(whole, "0.3"))  # 10 steps, checkpoints at 5 and 10
    shutil.copytree(whole / "run", halves / "run")
    _wait(_launch(halves, "0.3", str(halves / "run" / "checkpoints" / "step-00000005")))  # steps 6..10 again
    for rank in range(2):
        a = torch.load(whole / f"params{rank}.pt", weights_only=True)
        b = torch.load(halves / f"params{rank}.pt", weights_only=True)
        for name in a:
            assert torch.equal(a[name], b[name]), (rank, name)
    run = halves / "run" / "checkpoints"
    training = torch.load(run / (run / "latest").read_text().strip() / "training.pt", weights_only=True)
    r0, r1 = training["rng_ranks"]
    assert not torch.equal(r0["torch"], r1["torch"])  # two different dropout streams were saved
