"""Bytes a person gave as text, decoded as UTF-8, with one clear error for anything else.

Every reader of a person's text decodes through here (review files, ``predict``'s stdin, the
language models' ``--data``), so they all agree: a leading UTF-8 byte-order mark is dropped (in
character mode it would become a token), UTF-16 and UTF-32 text is named as such with the
command that converts it, NUL bytes mean binary data, and bytes that are not UTF-8 are one
error naming the byte and its line. :func:`decode_blocks` does it piece by piece, for a file
too big to hold twice.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator

from attnlab.errors import AttnlabError

__all__ = ["HEAD", "wide_encoding", "refuse_wide", "decode_blocks", "decode_text"]

HEAD = 4096  # bytes looked at to tell a wide encoding


def wide_encoding(head: bytes) -> str | None:
    """``"UTF-16"`` or ``"UTF-32"`` (with a byte-order mark), ``"UTF-16LE"`` ... ``"UTF-32BE"``
    (without one, judged from where mostly-ASCII text in that encoding has its NUL bytes) when
    ``head``, the first bytes of some text, is not UTF-8 but a wide encoding; else ``None``."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):  # before UTF-16: FF FE 00 00 starts with FF FE
        return "UTF-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "UTF-16"
    n = len(head) // 4 * 4
    if n == 0:
        return None
    # The share of NUL bytes at each offset modulo 4: ASCII "ab" is 61 00 62 00 in UTF-16LE,
    # 61 00 00 00 62 00 00 00 in UTF-32LE.
    nul = [head[i:n:4].count(0) / (n // 4) > 0.75 for i in range(4)]
    for name, pattern in (("UTF-32LE", (False, True, True, True)), ("UTF-32BE", (True, True, True, False)),
                          ("UTF-16LE", (False, True, False, True)), ("UTF-16BE", (True, False, True, False))):
        if tuple(nul) == pattern:
            return name
    return None


def refuse_wide(head: bytes, what: str) -> None:
    """Raise the one message for text in UTF-16/UTF-32: what it is and the command converting it."""
    wide = wide_encoding(head)
    if wide is not None:
        family = wide[:6]  # "UTF-16" or "UTF-32"
        raise AttnlabError(f"{what} looks like {family} text; convert it to UTF-8, e.g. with "
                           f"`iconv -f {wide.lower()} -t utf-8`")


def decode_blocks(blocks: Iterable[bytes], what: str) -> Iterator[str]:
    """The text of ``blocks`` (consecutive pieces of one file or stream) as UTF-8, piece by piece:
    a leading byte-order mark dropped, and an error naming ``what`` when the text is UTF-16/UTF-32
    (told from the first block's first :data:`HEAD` bytes), holds NUL bytes (binary data) or is
    not valid UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 0  # newlines in the blocks decoded so far
    first, at_start = True, True
    for block in _and_end(blocks):
        if first and block:
            refuse_wide(block[:HEAD], what)
            first = False
        if b"\0" in block:
            raise AttnlabError(f"{what} holds NUL bytes, so it is binary data, not text; pass UTF-8 text")
        try:
            text = decoder.decode(block, final=not block)
        except UnicodeDecodeError as e:  # e.object: the bytes held back from the last block, then this one
            line = lines + e.object.count(b"\n", 0, e.start) + 1
            raise AttnlabError(f"{what} is not UTF-8 text (byte 0x{e.object[e.start]:02x} on line {line}); "
                               "convert it to UTF-8, e.g. with `iconv -f latin1 -t utf-8`") from None
        lines += block.count(b"\n")
        if at_start and text:
            text, at_start = text.removeprefix("\ufeff"), False
        if text:
            yield text


def _and_end(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """``blocks`` with the empty block that tells the decoder the text has ended (empty blocks
    inside are left out, so that only the last one is empty)."""
    for block in blocks:
        if block:
            yield block
    yield b""


def decode_text(data: bytes, what: str) -> str:
    """``data`` as UTF-8 text (a leading byte-order mark dropped), or an error naming ``what``
    when it is UTF-16/UTF-32, holds NUL bytes (binary data) or is not valid UTF-8."""
    return "".join(decode_blocks([data], what))
