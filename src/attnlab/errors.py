"""The one exception type that the CLI turns into a one-line message (never a traceback)."""

from __future__ import annotations


class AttnlabError(Exception):
    """A problem the user can fix: bad input, a missing file, a wrong option.

    The message names the problem *and* the fix, e.g.
    ``"data file 'x.tsv' line 12 has 2 columns, expected 3 (id<TAB>label<TAB>text)"``.
    ``attnlab`` prints ``error: <message>`` and exits with code 2.
    """
