"""The special tokens and their ids: one definition for every vocabulary in attnlab.

Every vocabulary (the word tokenizer of the language models, the sentiment vocabularies, the
toy task's tokens) starts with the same specials, so id 0 always pads and id 1 is always the
unknown word. The language models add a start token at id 2.
"""

from __future__ import annotations

from attnlab.errors import AttnlabError

__all__ = ["PAD", "UNK", "START", "PAD_ID", "UNK_ID", "START_ID", "SPECIALS", "require_words"]

PAD, UNK, START = "<pad>", "<unk>", "<start>"
PAD_ID, UNK_ID, START_ID = 0, 1, 2
SPECIALS = (PAD, UNK, START)  # index == id


def require_words(count: int, *, fix: str) -> None:
    """A vocabulary built from training text needs at least two words besides the specials: with
    fewer, every word of every text (but one) is ``<unk>`` and the model learns nothing."""
    if count < 2:
        raise AttnlabError(f"the vocabulary would hold {count} word{'s' * (count != 1)} besides the special tokens, "
                           f"so every other word becomes {UNK}; {fix}")
