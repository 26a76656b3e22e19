"""Hostile command lines, one table: each runs through ``attnlab.cli.main`` in this process and
must end as the table says: its exit code and, on stderr, one ``error:`` line (or, for a run
that succeeds, a ``warning:``) holding the fragment, no traceback, and no scratch file or
half-made folder left behind.

To cover a new surface (pretrained models, translation, notebooks), add lines to ``CASES``:
``Case(id, argv, code, fragment)``. In ``argv``, ``{tmp}`` is the test's own empty folder and
``{name}`` any file or folder of :func:`hostile` (``{toy}`` is a trained toy run). ``when``
makes the system misbehave while the command runs (:data:`CONDITIONS`: a full disk, a read-only
folder, no network, ...); ``absent`` names paths that must not exist afterwards.
"""

from __future__ import annotations

import errno
import io
import os
import random
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

import attnlab.files
from attnlab.cli import main


@dataclass(frozen=True)
class Case:
    id: str
    argv: str  # split on spaces after formatting
    code: int  # the exit code
    fragment: str  # in the one error: line (code 2) or in a warning: line (code 0)
    when: str | None = None  # a key of CONDITIONS
    absent: tuple[str, ...] = ()  # paths (formatted like argv) that must not exist afterwards


TURNS = "\n\n".join(f"A{i % 4}:\nthe cat sat on mat {i % 9} ." for i in range(60))
GPT = "train gpt --preset tiny --set train.max_steps=1 --no-progress --out {tmp}/run"

CASES = [
    # ---- issue 25, section 2: writers on a full disk, read-only folders, paths in the way --------
    Case("eval-out-full-disk", "eval toy --checkpoint {toy} --out {tmp}/ev", 2,
         "cannot write {tmp}/ev: no space left on the disk holding {tmp}; free some space", "full_disk",
         absent=("{tmp}/ev",)),
    Case("eval-out-full-disk-after-the-lock", "eval toy --checkpoint {toy} --out {tmp}/ev", 2,
         "cannot write {tmp}/ev/config.json: no space left on the disk", "full_disk_files", absent=("{tmp}/ev",)),
    Case("eval-out-existing-folder-full-disk", "eval toy --checkpoint {toy} --out {empty}", 2,
         "cannot write {empty}: no space left on the disk holding", "full_disk", absent=("{empty}/.lock",)),
    Case("curves-out-full-disk", "curves {toy} --y val_loss --out {tmp}/c.png", 2,
         "cannot write {tmp}/c.png: no space left on the disk holding {tmp}", "full_disk", absent=("{tmp}/c.png",)),
    Case("curves-out-new-folder-full-disk", "curves {toy} --y val_loss --out {tmp}/new/c.png", 2,
         "cannot write {tmp}/new/c.png: no space left", "full_disk", absent=("{tmp}/new",)),
    Case("curves-out-read-only", "curves {toy} --y val_loss --out {tmp}/c.png", 2,
         "cannot write {tmp}/c.png: {tmp} is on a read-only file system; write somewhere else", "read_only"),
    Case("curves-out-no-permission", "curves {toy} --y val_loss --out {tmp}/c.png", 2,
         "cannot write {tmp}/c.png: permission denied in {tmp}", "no_permission"),
    Case("curves-out-existing-folder", "curves {toy} --y val_loss --out {empty}", 2,
         "cannot write {empty}: a folder of that name exists; name a file to write"),
    Case("curves-out-below-a-file", "curves {toy} --y val_loss --out {file}/sub/c.png", 2,
         "cannot write {file}/sub/c.png: {file} is a file, not a folder"),
    Case("curves-metrics-random-bytes", "curves {junk}", 2,
         "{junk}/metrics.jsonl is not a training log (no line of it is a record)"),
    Case("curves-metrics-not-records", "curves {nonrecords} --x step", 2, "has no records with both 'step'"),
    Case("fetch-shakespeare-full-disk", "data fetch shakespeare --dest {tmp}/d", 2,
         "cannot write {tmp}/d/tinyshakespeare/input.txt: no space left on the disk holding {tmp}", "full_disk",
         absent=("{tmp}/d",)),
    Case("fetch-shakespeare-dest-a-file", "data fetch shakespeare --dest {file}", 2,
         "--dest {file} is a file, not a folder"),
    Case("sweep-out-a-file", "sweep toy --grid train.lr=1e-3 --out {file}", 2,
         "--out {file} is a file, not a directory"),
    # ---- issue 25, section 4: nonsense accepted without a word ------------------------------------
    Case("sweep-grid-empty-value", "sweep toy --grid train.lr=1e-3,,2e-3 --out {tmp}/sw", 2,
         "--grid 'train.lr=1e-3,,2e-3': value 2 of 'train.lr' is empty", absent=("{tmp}/sw",)),
    Case("sweep-grid-trailing-comma", "sweep toy --grid train.lr=1e-3, --out {tmp}/sw", 2,
         "value 2 of 'train.lr' is empty", absent=("{tmp}/sw",)),
    Case("gpt-data-nul", GPT + " --data {nul}", 2, "data file '{nul}' holds NUL bytes, so it is binary data",
         absent=("{tmp}/run",)),
    Case("gpt-data-nul-into-an-existing-folder",
         "train gpt --preset tiny --set train.max_steps=1 --no-progress --data {nul} --out {empty}", 2,
         "holds NUL bytes"),  # the folder stays, without the lock the attempt made in it
    Case("gpt-stream-data-nul", GPT + " --set data.mode=stream --data {nul}", 2, "holds NUL bytes",
         absent=("{tmp}/run",)),
    Case("gpt-data-utf16", GPT + " --data {utf16}", 2,
         "data file '{utf16}' looks like UTF-16 text; convert it to UTF-8, e.g. with `iconv -f utf-16 -t utf-8`",
         absent=("{tmp}/run",)),
    Case("gpt-stream-data-utf16", GPT + " --set data.mode=stream --data {utf16}", 2, "looks like UTF-16 text",
         absent=("{tmp}/run",)),
    Case("gpt-stream-data-latin1", GPT + " --set data.mode=stream --data {latin1}", 2,
         "data file '{latin1}' is not UTF-8 text (byte 0xc6 on line 2)", absent=("{tmp}/run",)),
    Case("gpt-vocab-only-specials-max-vocab", GPT + " --set data.max_vocab=4", 2,
         "the vocabulary would hold 1 word besides the special tokens, so every other word becomes <unk>; "
         "lower data.min_freq (now 2) or raise data.max_vocab (now 4)", absent=("{tmp}/run",)),
    Case("gpt-vocab-only-specials-min-freq", GPT + " --set data.min_freq=1000000", 2,
         "the vocabulary would hold 0 words besides the special tokens", absent=("{tmp}/run",)),
    Case("gpt-stream-vocab-only-specials", GPT + " --set data.mode=stream --set data.min_freq=1000000", 2,
         "lower data.min_freq (now 1000000)", absent=("{tmp}/run",)),
    Case("vit-cutout-larger-than-the-image", "train vit --preset tiny --set data.cutout=64 --out {tmp}/run", 2,
         "data.cutout=64 is larger than the 32x32 images (model.image_size)", absent=("{tmp}/run",)),
    Case("fetch-cifar10-offline", "data fetch cifar10 --dest {tmp}/cf/deeper", 2, "could not reach URL", "offline",
         absent=("{tmp}/cf",)),
    # ---- earlier rounds (fast ones) ----------------------------------------------------------------
    Case("config-out-of-range", "train toy --set model.dim=0 --out {tmp}/run", 2,
         "config key 'model.dim' must be >= 1", absent=("{tmp}/run",)),
    Case("eval-missing-checkpoint", "eval toy --checkpoint {tmp}/missing --out {tmp}/ev", 2,
         "checkpoint path {tmp}/missing does not exist", absent=("{tmp}/ev",)),
    Case("eval-into-a-training-run", "eval toy --checkpoint {toy} --out {toy}", 2, "holds a training run"),
    Case("curves-not-a-run", "curves {tmp}", 2, "{tmp} has no metrics.jsonl"),
    Case("curves-labels-miscounted", "curves {toy} --label a --label b", 2, "give one --label per run (1), got 2"),
    Case("sweep-grid-without-values", "sweep toy --grid train.lr", 2, "--grid expects KEY=V1,V2,..."),
    Case("glove-vocab-size-zero", "data fetch glove --vocab-size 0 --dest {tmp}/gl", 2,
         "--vocab-size must be >= 1", absent=("{tmp}/gl",)),
    Case("predict-wrong-task", "predict --checkpoint {toy} great", 2, "not a sentiment classifier"),
    # ---- numbers that are not numbers (NaN, infinity) -----------------------------------------------
    Case("translate-length-penalty-nan", "translate --checkpoint {toy} hello --length-penalty nan", 2,
         "--length-penalty must be a finite number >= 0, got nan"),
    Case("explore-length-penalty-inf", "explore --checkpoint {toy} 1 --length-penalty inf --out {tmp}/x.html", 2,
         "--length-penalty must be a finite number >= 0, got inf", absent=("{tmp}/x.html",)),
]


# ---- what the system does wrong while a command runs ----------------------------------------------
def _refusing(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


class _FullFile(io.RawIOBase):
    """A file opened for writing on a full disk: it exists, but no byte can be written to it."""

    def __init__(self, f):
        self.f = f

    def writable(self) -> bool:
        return True

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fileno(self) -> int:
        return self.f.fileno()

    def close(self) -> None:
        self.f.close()
        super().close()


def _files_open(monkeypatch, code: int | None) -> None:
    """``attnlab.files``' writes: on a full disk (``code`` None: the file is made, writing fails) or
    refused at once with ``code`` (the folder is read-only, no permission)."""
    def fake_open(path, mode="r", *args, **kwargs):
        if "w" not in mode:
            return open(path, mode, *args, **kwargs)
        if code is not None:
            raise OSError(code, os.strerror(code), str(path))
        return _FullFile(open(path, mode, *args, **kwargs))
    monkeypatch.setattr(attnlab.files, "open", fake_open, raising=False)


def _full_disk(monkeypatch) -> None:
    _files_open(monkeypatch, None)
    monkeypatch.setattr(os, "pwrite", _refusing(errno.ENOSPC))  # the run directory's lock (its owner's PID)


def _offline(monkeypatch) -> None:
    def unreachable(*args, **kwargs):
        raise urllib.error.URLError(OSError(errno.ENETUNREACH, "Network is unreachable"))
    monkeypatch.setattr(urllib.request, "urlopen", unreachable)


CONDITIONS = {
    "full_disk": _full_disk,
    "full_disk_files": lambda mp: _files_open(mp, None),
    "read_only": lambda mp: _files_open(mp, errno.EROFS),
    "no_permission": lambda mp: _files_open(mp, errno.EACCES),
    "offline": _offline,
}


# ---- the files the command lines name ----------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("hostile") / "toy"
    assert main(["train", "toy", "--preset", "tiny", "--no-progress", "--out", str(run)]) == 0
    return run


def hostile(tmp: Path, toy: Path) -> dict[str, Path]:
    """The paths ``{name}`` of the table, made in ``tmp`` (``tmp/in``, apart from what commands write)."""
    d = tmp / "in"
    d.mkdir()
    (d / "file").write_text("a file where a folder is expected\n")
    (d / "empty").mkdir()
    (d / "junk").mkdir()
    (d / "junk" / "metrics.jsonl").write_bytes(random.Random(0).randbytes(3000))
    (d / "nonrecords").mkdir()
    (d / "nonrecords" / "metrics.jsonl").write_text('5\n"abc"\n[1, 2]\n{"step": "x", "val_accuracy": 1}\n')
    (d / "nul.txt").write_text(TURNS.replace("cat", "c\0t"))
    (d / "utf16.txt").write_text(TURNS, encoding="utf-16")
    (d / "latin1.txt").write_bytes(TURNS.replace("cat", "\u00c6gir", 1).encode("latin-1"))
    return {"tmp": tmp, "toy": toy, "file": d / "file", "empty": d / "empty", "junk": d / "junk",
            "nonrecords": d / "nonrecords", "nul": d / "nul.txt", "utf16": d / "utf16.txt",
            "latin1": d / "latin1.txt"}


def _leftovers(root: Path) -> list[str]:
    """Scratch files (``.NAME.PID.tmp``, ``*.partial``) and run-directory locks under ``root``."""
    return sorted(str(p) for p in root.rglob("*")
                  if p.name.endswith((".tmp", ".partial")) or p.name == ".lock")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_command(case, toy_run, tmp_path, monkeypatch, capsys):
    paths = hostile(tmp_path, toy_run)
    argv = [arg.format(**paths) for arg in case.argv.split()]
    monkeypatch.chdir(tmp_path)  # commands that default to ./runs or ./data write here
    if case.when is not None:
        CONDITIONS[case.when](monkeypatch)
    code = main(argv)
    monkeypatch.undo()
    out, err = capsys.readouterr()
    fragment = case.fragment.format(**paths)
    assert "Traceback" not in out + err
    if case.code == 2:
        assert err.count("\n") == 1 and err.startswith("error: "), err
        assert fragment in err, err
    else:
        assert any(line.startswith("warning: ") and fragment in line for line in err.splitlines()), err
    assert code == case.code, err
    assert _leftovers(tmp_path) == []
    for path in case.absent:
        assert not Path(path.format(**paths)).exists(), path
