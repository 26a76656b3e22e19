"""The attention explorer's page: one self-contained HTML file (styles, script and data inline).

The page is ``explorer.html`` with ``explorer.css``, the script (the ``explorer*.js`` parts) and
the data of :class:`attnlab.viz.explorer.Explorer` written into it; it loads nothing from the
network, so it works offline and can be mailed or archived as one file.
"""

from __future__ import annotations

import functools
import html
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError
from attnlab.files import write_atomic

__all__ = ["render", "render_form", "write"]

_SLOT = re.compile(r"\{\{([A-Z]+)\}\}")


@functools.cache  # --serve renders a page per request; the assets do not change
def _asset(name: str) -> str:
    return resources.files("attnlab.viz").joinpath(name).read_text(encoding="utf-8")


# The script's parts, in page order: the helpers, the per-head statistics, the views (each one function
# with a redraw method; the comparison of --compare and the export buttons among them), the pages that
# put them together (text, translation, images), and last the entry, which picks the page by the data's kind.
_SCRIPT_PARTS = ("explorer_helpers.js", "explorer_stats.js", "explorer_head_view.js", "explorer_model_view.js",
                 "explorer_generation.js", "explorer_prediction.js", "explorer_compare.js", "explorer_export.js",
                 "explorer_text_page.js", "explorer_translation.js", "explorer_image_page.js",
                 "explorer_image_views.js", "explorer.js")


@functools.cache
def _script() -> str:
    """The parts as one script: one strict-mode function scope, so their names stay off the page's globals."""
    parts = "\n".join(_asset(name) for name in _SCRIPT_PARTS)
    assert "<script" not in parts.lower() and "</" not in parts, "a script part would end or open the <script>"
    return f'"use strict";\n(function () {{\n{parts}\n}})();\n'


def script_json(data: Any) -> str:
    """JSON that is safe inside ``<script>``: no ``</script>`` or ``<!--`` can end or bend it."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(data: dict[str, Any] | None, *, form: str = "") -> str:
    """The page for ``data`` (None: an empty page); ``form`` is HTML put above it (the local server's form)."""
    title = f"attnlab explore: {data['title']}" if data else "attnlab explore"
    slots = {"TITLE": html.escape(title), "CSS": _asset("explorer.css"), "JS": _script(),
             "DATA": script_json(data), "FORM": form}
    # One pass over the template: text put into a slot is never scanned for slots again.
    return _SLOT.sub(lambda m: slots[m.group(1)], _asset("explorer.html"))


def render_form(slots: dict[str, str]) -> str:
    """The local server's form, ``explorer_form.html`` with every slot's text HTML-escaped."""
    return _SLOT.sub(lambda m: html.escape(slots[m.group(1)]), _asset("explorer_form.html"))


def write(data: dict[str, Any], out: str | Path) -> Path:
    """Write the page to ``out`` (its folder is created); returns the path."""
    out = Path(out)
    try:
        write_atomic(out, render(data))
    except OSError as e:
        raise AttnlabError(f"cannot write --out {out}: {e}") from None
    return out
