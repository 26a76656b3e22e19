"""IMDB, the Large Movie Review Dataset v1.0 (Maas et al., 2011), and the course's TSV format.

Two ways in, one result (:class:`Splits`: train / val / test lists of :class:`Review`):

* ``--data-dir PATH``: an extracted ``aclImdb/`` folder (``{train,test}/{pos,neg}/<id>_<rating>.txt``),
  a folder that holds one, or the ``aclImdb_v1.tar.gz`` archive itself (read without extracting).
  25,000 train / 25,000 test reviews; the validation reviews are carved from *train* with a
  seed (never from test).
* ``--train FILE --dev FILE [--test FILE]``: one review per line, ``id<TAB>label<TAB>text``,
  labels ``pos`` / ``neg``. A line with a missing column or an unknown label is an error that
  names the file and the line; bytes that are not UTF-8 are replaced (U+FFFD) with a warning
  naming the file and the lines; a UTF-16 or UTF-32 file is refused with the command that
  converts it.

In an ``aclImdb/`` folder, a folder named like a review (``x.txt``) is skipped with a warning; a
review that cannot be read (no permission, a broken symbolic link, a pipe) is an error naming
it. Training needs both labels: :func:`load_splits` refuses a training set of one label.

``attnlab data fetch imdb`` downloads the public archive (resumable, SHA-256 checked) and
extracts it: :func:`fetch`.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attnlab.data.decoding import HEAD, decode_text, refuse_wide, wide_encoding
from attnlab.errors import AttnlabError

__all__ = [
    "URL", "SHA256", "MD5", "LABELS", "Review", "Splits",
    "fetch", "read_tsv", "read_acl_imdb", "load_splits", "split_train_val",
    "wide_encoding", "decode_text",  # defined in attnlab.data.decoding
]

URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
# Published checksums of aclImdb_v1.tar.gz (84,125,825 bytes). The SHA-256 is the one used by
# several independent dataset loaders (e.g. JuliaML's MLDatasets, Rust/Go loaders); the MD5 is
# the one PaddlePaddle's and torchtext's IMDB loaders verify.
SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
MD5 = "7c2ac02c03563afcf9b574c7e56c153a"

LABELS = ("neg", "pos")  # class index 0 = negative, 1 = positive
_LABEL_INDEX = {name: i for i, name in enumerate(LABELS)}
_SPLIT_DIRS = ("train/pos", "train/neg", "test/pos", "test/neg")
_MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/([^/]+)\.txt$")
_EXPECTED_DIR = (
    "expected an extracted aclImdb/ folder (train/pos, train/neg, test/pos, test/neg holding "
    "<id>_<rating>.txt reviews), a folder holding one, or the aclImdb_v1.tar.gz archive "
    "(get it with `attnlab data fetch imdb`)"
)


@dataclass(frozen=True)
class Review:
    """One labelled review: ``label`` is an index into :data:`LABELS` (0 = neg, 1 = pos)."""

    id: str
    label: int
    text: str


@dataclass
class Splits:
    """Train / validation / test reviews (``test`` may be empty) and where they came from."""

    train: list[Review]
    val: list[Review]
    test: list[Review] = field(default_factory=list)
    source: str = ""


# --------------------------------------------------------------------------- download


def fetch(dest: Path) -> Path:
    """Download ``aclImdb_v1.tar.gz`` into ``dest`` (resumable, checksum verified), extract it
    there and return the ``aclImdb/`` folder."""
    from attnlab.data.download import extract_archive, fetch_url

    dest = Path(dest)
    target = dest / "aclImdb"
    if all((target / d).is_dir() for d in _SPLIT_DIRS):
        return target
    archive = fetch_url(URL, dest / "aclImdb_v1.tar.gz", sha256=SHA256, desc="IMDB reviews")
    extract_archive(archive, dest)
    if not all((target / d).is_dir() for d in _SPLIT_DIRS):
        raise AttnlabError(f"extracting {archive} did not produce {target}; {_EXPECTED_DIR}")
    return target


# --------------------------------------------------------------------------- decoding
# (a person's text as a whole: attnlab.data.decoding; here, one TSV line at a time)


def _decode(data: bytes, where: str, bad: list[str]) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        bad.append(where)
        return data.decode("utf-8", errors="replace")


def _warn_bad(bad: list[str], what: str) -> None:
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        print(
            f"warning: {len(bad)} {what} held bytes that are not UTF-8; they were replaced by "
            f"U+FFFD: {shown}",
            file=sys.stderr,
        )


# --------------------------------------------------------------------------- TSV


def _tsv_line(path: Path, lineno: int, line: str) -> list[Review]:
    """The review on one line of a TSV file (none for a blank line or the header)."""
    if not line.strip():
        return []
    parts = line.split("\t", 2)
    if lineno == 1 and [p.strip().lower() for p in parts] == ["id", "label", "text"]:
        return []
    if len(parts) != 3:
        raise AttnlabError(
            f"{path} line {lineno} has {len(parts)} column(s), expected 3: "
            "id<TAB>label<TAB>text"
        )
    rid, label, text = parts[0].strip(), parts[1].strip().lower(), parts[2]
    if label not in _LABEL_INDEX:
        raise AttnlabError(
            f"{path} line {lineno} has the unknown label {parts[1]!r}; labels are "
            f"{' or '.join(LABELS)}"
        )
    return [Review(rid or f"{path.name}:{lineno}", _LABEL_INDEX[label], text)]


def read_tsv(path: str | Path) -> list[Review]:
    """Reviews of a TSV file: ``id<TAB>label<TAB>text`` per line, labels ``pos``/``neg``.

    Blank lines are skipped; a first line ``id<TAB>label<TAB>text`` is taken as a header. Tabs
    inside the text are kept (only the first two split). Errors name the file and the line.
    """
    path = Path(path)
    if path.is_dir():
        raise AttnlabError(
            f"TSV file '{path}' is a directory; --train/--dev/--test take a file with lines "
            "id<TAB>label<TAB>text (for an aclImdb/ folder use --data-dir)"
        )
    if not path.exists():
        raise AttnlabError(
            f"TSV file '{path}' does not exist; pass --train/--dev/--test files with lines "
            "id<TAB>label<TAB>text"
        )
    reviews: list[Review] = []
    bad: list[str] = []
    try:
        with open(path, "rb") as f:
            refuse_wide(f.peek(HEAD)[:HEAD], f"TSV file '{path}'")
            for lineno, raw in enumerate(f, start=1):
                reviews += _tsv_line(path, lineno, _decode(raw, f"{path}:{lineno}", bad).rstrip("\r\n"))
    except OSError as e:
        raise AttnlabError(f"cannot read TSV file '{path}': {e.strerror or e}; check that it is a readable "
                           "file") from None
    _warn_bad(bad, f"line(s) of {path}")
    if not reviews:
        raise AttnlabError(f"TSV file '{path}' holds no reviews; expected id<TAB>label<TAB>text lines")
    return reviews


# --------------------------------------------------------------------------- aclImdb


def _sort_key(review: Review) -> tuple:
    num = review.id.rsplit("/", 1)[-1].split("_", 1)[0]
    return (review.id.rsplit("/", 1)[0], int(num) if num.isdigit() else -1, review.id)


def _read_review(f: Path) -> bytes:
    """The bytes of one review file, or an error that names it and says what is wrong with it."""
    if not f.is_file():  # follows symbolic links; reading a pipe would wait forever
        if f.is_symlink():
            raise AttnlabError(f"review file '{f}' is a broken symbolic link (to '{os.readlink(f)}'); "
                               "restore its target or delete the link")
        raise AttnlabError(f"review file '{f}' is not a regular file (a pipe, socket or device); delete it")
    try:
        return f.read_bytes()
    except OSError as e:
        raise AttnlabError(f"cannot read review file '{f}': {e.strerror or e}; make it readable "
                           "(e.g. chmod a+r) or delete it") from None


def _read_folder(root: Path) -> dict[str, list[Review]]:
    out: dict[str, list[Review]] = {"train": [], "test": []}
    bad: list[str] = []
    skipped: list[str] = []
    for split in ("train", "test"):
        for label in LABELS:
            folder = root / split / label
            try:
                entries = sorted(folder.iterdir())
            except OSError as e:
                raise AttnlabError(f"cannot list the folder '{folder}': {e.strerror or e}; make it readable "
                                   "(e.g. chmod a+rx)") from None
            for f in entries:
                if f.suffix != ".txt":
                    continue
                if f.is_dir():  # a folder named like a review holds no review
                    skipped.append(str(f))
                    continue
                text = _decode(_read_review(f), str(f), bad)
                out[split].append(Review(f"{split}/{label}/{f.stem}", _LABEL_INDEX[label], text))
    if skipped:
        shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        print(f"warning: skipped {len(skipped)} folder(s) named like review files: {shown}", file=sys.stderr)
    _warn_bad(bad, "review file(s)")
    return out


def _read_archive(path: Path) -> dict[str, list[Review]]:
    out: dict[str, list[Review]] = {"train": [], "test": []}
    bad: list[str] = []
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                m = _MEMBER.search(member.name)
                if not m or not member.isfile():
                    continue
                split, label, stem = m.groups()
                handle = tar.extractfile(member)
                if handle is None:
                    continue
                data = handle.read()
                out[split].append(
                    Review(f"{split}/{label}/{stem}", _LABEL_INDEX[label], _decode(data, member.name, bad))
                )
    except (tarfile.TarError, OSError, EOFError) as e:
        raise AttnlabError(f"cannot read the archive {path}: {e}; {_EXPECTED_DIR}") from None
    _warn_bad(bad, "review file(s)")
    return out


def _find_root(path: Path) -> Path | None:
    for cand in (path, path / "aclImdb"):
        if all((cand / d).is_dir() for d in _SPLIT_DIRS):
            return cand
    return None


def read_acl_imdb(path: str | Path) -> dict[str, list[Review]]:
    """``{"train": [...], "test": [...]}`` from an ``aclImdb/`` folder, its parent, or the archive."""
    path = Path(path)
    if not path.exists():
        raise AttnlabError(f"--data-dir '{path}' does not exist; {_EXPECTED_DIR}")
    if path.is_file():
        if not tarfile.is_tarfile(path):
            raise AttnlabError(f"--data-dir '{path}' is a file but not a tar archive; {_EXPECTED_DIR}")
        out = _read_archive(path)
    else:
        root = _find_root(path)
        if root is None:
            try:
                held = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())[:10]
            except OSError:
                held = []
            raise AttnlabError(
                f"--data-dir '{path}' is not an IMDB folder (it holds: "
                f"{', '.join(held) or 'nothing'}); {_EXPECTED_DIR}"
            )
        out = _read_folder(root)
    for split in ("train", "test"):
        if not out[split]:
            raise AttnlabError(f"--data-dir '{path}' holds no {split} reviews; {_EXPECTED_DIR}")
        out[split].sort(key=_sort_key)
    return out


# --------------------------------------------------------------------------- splits


def split_train_val(
    reviews: list[Review], *, val_fraction: float = 0.1, seed: int = 0
) -> tuple[list[Review], list[Review]]:
    """Shuffle ``reviews`` with ``seed``; return ``(train, val)`` with ``val_fraction`` in val."""
    if not 0.0 < val_fraction < 1.0:
        raise AttnlabError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    if len(reviews) < 2:
        raise AttnlabError(f"need at least 2 training reviews to carve a validation set, got {len(reviews)}")
    order = np.random.default_rng(seed).permutation(len(reviews))
    n_val = min(max(1, round(val_fraction * len(reviews))), len(reviews) - 1)
    val = sorted(order[:n_val].tolist())
    train = sorted(order[n_val:].tolist())
    return [reviews[i] for i in train], [reviews[i] for i in val]


def _check_labels(train: list[Review], source: str, *, folder: bool) -> None:
    """Refuse a training split of one label: a classifier has nothing to learn from it."""
    labels = {r.label for r in train}
    if len(labels) == 1:
        (only,) = labels
        other = LABELS[1 - only]
        fix = (f"add reviews to the train/{other}/ folder of {source}" if folder
               else f"add lines labelled {other} to {source}")
        raise AttnlabError(f"all {len(train)} training reviews are labelled '{LABELS[only]}', so there is "
                           f"nothing to learn; a classifier needs both labels: {fix}")


def load_splits(
    *,
    data_dir: str | Path | None = None,
    train: str | Path | None = None,
    dev: str | Path | None = None,
    test: str | Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    check_labels: bool = True,
) -> Splits:
    """Reviews from ``data_dir`` (aclImdb) or TSV files; validation carved from train when no ``dev``.

    With ``check_labels`` (for training), a training split that holds a single label is an
    error: a classifier cannot learn from it. Evaluation, which scores only val/test, may pass False.
    """
    if data_dir is not None and train is not None:
        raise AttnlabError("pass either --data-dir (aclImdb) or --train/--dev/--test (TSV), not both")
    if data_dir is not None:
        if dev is not None or test is not None:
            raise AttnlabError("--dev/--test go with --train (TSV files), not with --data-dir")
        acl = read_acl_imdb(data_dir)
        tr, va = split_train_val(acl["train"], val_fraction=val_fraction, seed=seed)
        if check_labels:
            _check_labels(tr, str(data_dir), folder=True)
        return Splits(tr, va, acl["test"], source=str(Path(data_dir).resolve()))
    if train is None:
        raise AttnlabError(
            "no data: pass --data-dir PATH (an extracted aclImdb/ folder or aclImdb_v1.tar.gz; "
            "`attnlab data fetch imdb` downloads it) or --train FILE --dev FILE [--test FILE] "
            "(TSV: id<TAB>label<TAB>text)"
        )
    tr = read_tsv(train)
    if dev is not None:
        va = read_tsv(dev)
    else:
        tr, va = split_train_val(tr, val_fraction=val_fraction, seed=seed)
    if check_labels:
        _check_labels(tr, str(train), folder=False)
    te = read_tsv(test) if test is not None else []
    return Splits(tr, va, te, source=str(Path(train).resolve()))


def digest(reviews: list[Review]) -> str:
    """A content hash of reviews (ids, labels, texts), for cache keys."""
    h = hashlib.blake2b(digest_size=16)
    for r in reviews:
        h.update(f"{r.id}\t{r.label}\t{len(r.text)}\n".encode())
        h.update(r.text.encode("utf-8", errors="surrogatepass"))
    return h.hexdigest()
