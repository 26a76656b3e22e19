"""Tiny Shakespeare: the embedded default text, its dialogues, a seeded split and ``fetch``.

The text (Karpathy's char-rnn ``input.txt``, public domain, 1,115,394 characters) ships inside
the package, so ``attnlab train gpt`` works offline, and ``attnlab data fetch shakespeare``
copies it out (md5-checked) instead of downloading it. It is a play script::

    First Citizen:
    Before we proceed any further, hear me speak.

    All:
    Speak, speak.

Each speaker turn (the speaker's name and what they say) is a block separated from the next by
a blank line; :func:`all_dialogues` returns one string per turn, and :func:`split_dialogues`
splits them into training and validation turns at random, with a seed, so that no turn is
shared between the two.
"""

from __future__ import annotations

import hashlib
import random
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from attnlab.data.decoding import decode_text
from attnlab.errors import AttnlabError

if TYPE_CHECKING:
    from importlib.abc import Traversable

__all__ = ["URL", "MD5", "load_text", "all_dialogues", "split_dialogues", "fetch"]

# Where the bundled copy comes from; its md5 is that of the file at this URL.
URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
MD5 = "6fb458f1232090904fb40fe944165e91"
EMBEDDED = "tinyshakespeare.txt"  # package data of attnlab.data

# One or more lines holding only white space separate two turns.
_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*\n")


def load_text(path: str | Path | None = None) -> str:
    """The text of ``path`` (UTF-8, :func:`attnlab.data.decoding.decode_text`), or the embedded Tiny
    Shakespeare when ``path`` is ``None``."""
    if path is None:
        return _bundled().read_text(encoding="utf-8")
    path = Path(path)
    if not path.exists():
        raise AttnlabError(f"data file '{path}' does not exist; pass an existing text file with --data")
    if not path.is_file():
        raise AttnlabError(f"data path '{path}' is not a file; pass a plain-text file with --data")
    text = decode_text(path.read_bytes(), f"data file '{path}'")  # no BOM; UTF-16 and NUL bytes refused
    if not text.strip():
        raise AttnlabError(f"data file '{path}' is empty; pass a file with some text in it")
    return text


def all_dialogues(text: str) -> list[str]:
    """Every speaker turn of ``text``: the blocks between blank lines, stripped, empty ones dropped."""
    text = text.replace("\r\n", "\n")
    return [block.strip() for block in _BLANK_LINES.split(text) if block.strip()]


def split_dialogues(
    dialogues: list[str], *, val_fraction: float = 0.1, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Shuffle the turns with ``seed`` and return ``(train, val)``, ``val`` holding ``val_fraction``.

    With at least two turns both parts are non-empty, so a tiny ``--data`` file still trains.
    """
    if not 0.0 < val_fraction < 1.0:
        raise AttnlabError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    if len(dialogues) < 2:
        raise AttnlabError(
            f"the text has {len(dialogues)} dialogue turn(s), need at least 2 to split into "
            "training and validation; separate turns with blank lines"
        )
    order = list(range(len(dialogues)))
    random.Random(seed).shuffle(order)
    n_val = min(max(1, round(val_fraction * len(dialogues))), len(dialogues) - 1)
    val_idx = set(order[:n_val])
    train = [d for i, d in enumerate(dialogues) if i not in val_idx]
    val = [d for i, d in enumerate(dialogues) if i in val_idx]
    return train, val


def _bundled() -> Traversable:
    return resources.files("attnlab.data").joinpath(EMBEDDED)


def bundled_path() -> str:
    """Where the bundled copy of Tiny Shakespeare lies (inside the installed package)."""
    return str(_bundled())


def _bundled_bytes() -> bytes:
    return _bundled().read_bytes()


def fetch(dest: Path) -> Path:
    """Copy the bundled Tiny Shakespeare to ``dest/tinyshakespeare/input.txt`` (md5-checked, no network).

    An existing copy with the right checksum is kept as it is; a damaged one is replaced.
    """
    from attnlab.files import file_digest, writing_atomically

    target = Path(dest) / "tinyshakespeare" / "input.txt"
    if target.is_file() and file_digest(target, "md5") == MD5:
        return target
    data = _bundled_bytes()
    actual = hashlib.md5(data).hexdigest()
    if actual != MD5:
        raise AttnlabError(f"the copy of Tiny Shakespeare installed with attnlab is damaged (md5 {actual}, expected "
                           f"{MD5}); reinstall attnlab, or download {URL} and pass its path with --data")
    with writing_atomically(target) as f:
        f.write(data)
    return target
