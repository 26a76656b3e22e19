"""CIFAR-10 in its canonical python format, read safely.

The data set ships as ``cifar-10-python.tar.gz`` holding ``cifar-10-batches-py/`` with five
training batches of 10,000 images, ``test_batch`` and ``batches.meta``. Each batch is a Python 2
pickle (protocol 2): a dict with byte-string keys ``data`` (uint8, N x 3072, channel-major:
1024 red, 1024 green, 1024 blue values per image), ``labels``, ``filenames`` and ``batch_label``.

Unpickling can run arbitrary code, so the batches are read with `_RestrictedUnpickler`, which
resolves only the four globals the format uses; anything else (``os.system``, ``builtins.eval``
...) is refused with an `AttnlabError`. Both the extracted directory and the archive itself are
accepted (the archive is read in memory, never extracted).
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np
import torch

from attnlab.data.image_set import ImageSet
from attnlab.errors import AttnlabError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
_FIX = "delete it and run `attnlab data fetch cifar10`, or pass --data-dir pointing at an intact copy"


def _numpy_reconstruct():
    try:  # numpy >= 2 moved the implementation to numpy._core
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return _reconstruct


# (module, name) -> the object it may resolve to. This is everything the format needs: numpy's
# array rebuild protocol, and `_codecs.encode`, with which Python 3 writes bytes at protocol 2.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _latin1_encode,
}


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """`_codecs.encode` as Python 3 uses it to pickle bytes at protocol 2; latin-1 only."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"encoding '{encoding}' is not allowed in a CIFAR-10 batch")
    return text.encode("latin1")


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can build dicts, lists, strings, numbers and numpy arrays, nothing else."""

    def find_class(self, module: str, name: str):
        make = _ALLOWED.get((module, name))
        if make is None:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a CIFAR-10 batch")
        return make()


def _unpickle(data: bytes, name: str) -> dict:
    """Decode one batch (or ``batches.meta``) from its bytes; `name` is used in error messages."""
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        if "is not allowed" in str(exc):
            raise AttnlabError(f"refusing to load '{name}': {exc}; this is not a genuine CIFAR-10 file, "
                               f"{_FIX}") from None
        raise AttnlabError(f"CIFAR-10 file '{name}' is truncated or corrupted ({exc}); {_FIX}") from None
    except (EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
            MemoryError, UnicodeDecodeError) as exc:
        raise AttnlabError(f"CIFAR-10 file '{name}' is truncated or corrupted "
                           f"({type(exc).__name__}: {exc}); {_FIX}") from None
    if not isinstance(obj, dict):
        raise AttnlabError(f"CIFAR-10 file '{name}' does not hold a dict; {_FIX}")
    # Keys are Python 2 strings (bytes) in the original; accept str keys too.
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _batch_tensors(batch: dict, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise AttnlabError(f"CIFAR-10 file '{name}' has no uint8 N x 3072 'data' array; {_FIX}")
    if not isinstance(labels, list) or len(labels) != data.shape[0]:
        raise AttnlabError(f"CIFAR-10 file '{name}' has {data.shape[0]} images but a different number of "
                           f"labels; {_FIX}")
    images = torch.from_numpy(data.copy()).view(-1, 3, 32, 32)  # (N, 3, 32, 32) channel-major
    try:
        y = torch.tensor(labels, dtype=torch.long)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        raise AttnlabError(f"CIFAR-10 file '{name}' has labels that are not integers; {_FIX}") from None
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(CLASSES)):
        raise AttnlabError(f"CIFAR-10 file '{name}' has labels outside 0..9; {_FIX}")
    return images, y


def _read_files(path: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """The bytes of the named batch files, from a directory or from the .tar.gz archive."""
    if path.is_dir():
        folder = path / FOLDER if (path / FOLDER).is_dir() else path
        if not (folder / names[0]).is_file() and (path / ARCHIVE).is_file():
            return _read_files(path / ARCHIVE, names)
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise AttnlabError(f"'{folder}' is not a CIFAR-10 folder: {', '.join(missing)} missing; "
                               f"run `attnlab data fetch cifar10 --dest DIR` or pass the folder holding "
                               f"{FOLDER}/ or {ARCHIVE}")
        return {n: (folder / n).read_bytes() for n in names}
    if not path.is_file():
        raise AttnlabError(f"CIFAR-10 data not found at '{path}'; run `attnlab data fetch cifar10` or pass "
                           f"--data-dir pointing at {FOLDER}/ or {ARCHIVE}")
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:  # one sequential pass over the gzip stream
                base = member.name.rsplit("/", 1)[-1]
                handle = tar.extractfile(member) if member.isfile() and base in names else None
                if handle is not None:
                    out[base] = handle.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise AttnlabError(f"CIFAR-10 archive '{path}' is truncated or corrupted ({exc}); {_FIX}") from None
    missing = [n for n in names if n not in out]
    if missing:
        raise AttnlabError(f"archive '{path}' lacks {', '.join(missing)}; it is not {ARCHIVE}; {_FIX}")
    return out


def load_cifar10(path: str | Path) -> tuple[ImageSet, ImageSet]:
    """Load (train, test) from ``cifar-10-batches-py/``, its parent, or ``cifar-10-python.tar.gz``."""
    path = Path(path)
    files = _read_files(path, TRAIN_FILES + TEST_FILES)
    sets = []
    for names in (TRAIN_FILES, TEST_FILES):
        parts = [_batch_tensors(_unpickle(files[n], str(path / n)), str(path / n)) for n in names]
        sets.append(ImageSet(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), CLASSES))
    return sets[0], sets[1]


def is_cifar10(path: str | Path) -> bool:
    """Whether `path` looks like CIFAR-10 in the canonical format (folder, parent, or archive)."""
    path = Path(path)
    if path.is_file():
        return path.name.endswith((".tar.gz", ".tgz", ".tar"))
    return any((p / "data_batch_1").is_file() for p in (path, path / FOLDER)) or (path / ARCHIVE).is_file()


def write_batch(path: str | Path, images: torch.Tensor, labels, *, batch_label: str = "batch") -> None:
    """Write uint8 images (N, 3, 32, 32) in the byte layout of the original batches (Python 2
    strings, protocol 2), e.g. to build test fixtures or convert your own images."""
    data = images.to(torch.uint8).reshape(len(images), 3072).numpy()  # (N, 3072)

    def s(b: bytes) -> bytes:  # a Python 2 str opcode
        return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + len(b).to_bytes(4, "little")) + b

    def i(v: int) -> bytes:
        return b"K" + bytes([v]) if v < 256 else b"J" + v.to_bytes(4, "little")

    n = data.shape[0]
    out = [b"\x80\x02}(", s(b"batch_label"), s(batch_label.encode()), s(b"labels"), b"](",
           *[i(int(v)) for v in labels], b"e", s(b"data"),
           b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85", s(b"b"), b"\x87R(K\x01",
           i(n), i(3072), b"\x86cnumpy\ndtype\n", s(b"u1"), b"K\x00K\x01\x87R(K\x03", s(b"|"),
           b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89", s(data.tobytes()), b"tb",
           s(b"filenames"), b"](", *[s(f"img_{k}.png".encode()) for k in range(n)], b"e", b"u."]
    Path(path).write_bytes(b"".join(out))


def fetch(dest: Path) -> Path:
    """Download ``cifar-10-python.tar.gz`` (md5-checked) into `dest` and extract it; returns the folder."""
    from attnlab.data.download import extract_archive, fetch_url
    from attnlab.files import removing_new_folders_on_failure

    dest = Path(dest)
    folder = dest / FOLDER
    if all((folder / n).is_file() for n in TRAIN_FILES + TEST_FILES):
        return folder
    with removing_new_folders_on_failure(dest):  # offline, or a refused archive: no empty --dest left behind
        archive = fetch_url(URL, dest / ARCHIVE, md5=MD5, desc="CIFAR-10")
        extract_archive(archive, dest)
    return folder
