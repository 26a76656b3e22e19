"""``attnlab lab report``: run every experiment and write one self-contained HTML page.

Each experiment runs in this process with its default options (or ``--tiny`` ones, for a smoke
test), into ``OUT/<name>/``; the page embeds its PNG as base64 and shows its headline numbers
and configuration, so ``OUT/report.html`` can be mailed or archived on its own.
"""

from __future__ import annotations

import argparse
import base64
import html
import inspect
import json
import re
import time
import traceback
from pathlib import Path

from attnlab.errors import AttnlabError
from attnlab.lab import EXPERIMENTS
from attnlab.lab._common import machine

HELP = "run every lab experiment at its default size and write one self-contained HTML report"
EXAMPLE = "attnlab lab report --out runs/lab"
NAMES = tuple(name for name in EXPERIMENTS if name != "report")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("runs") / "lab",
                   help="directory for report.html and one sub-directory per experiment (default runs/lab)")
    p.add_argument("--only", nargs="+", choices=NAMES, default=list(NAMES), metavar="NAME",
                   help=f"experiments to run (default all: {' '.join(NAMES)})")
    p.add_argument("--tiny", action="store_true",
                   help="run each experiment at a tiny size: a quick look in seconds, not numbers to quote")


def _run_one(name: str, out: Path, tiny: bool) -> dict:
    mod = EXPERIMENTS.load(name)
    p = argparse.ArgumentParser(prog=f"attnlab lab {name}")
    mod.add_arguments(p)
    argv = (list(mod.TINY_ARGS) if tiny else []) + ["--out", str(out / name)]
    args = p.parse_args(argv)
    print(f"== {name}: attnlab lab {name} {' '.join(argv)}")
    t0 = time.perf_counter()
    try:
        rc = mod.run(args)
        error = None if rc == 0 else f"exit code {rc}"
    except AttnlabError as e:
        error = str(e)
    except Exception:  # noqa: BLE001 -- one broken experiment must not hide the others' results
        error = traceback.format_exc()
    entry = {"name": name, "help": mod.HELP, "doc": (mod.__doc__ or "").strip(), "argv": argv,
             "seconds": time.perf_counter() - t0, "error": error}
    png, js = out / name / f"{name}.png", out / name / f"{name}.json"
    if error is None:
        entry["png"] = base64.b64encode(png.read_bytes()).decode("ascii")
        entry["json"] = json.loads(js.read_text())
    return entry


_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")  # :mod:`a.b`, :class:`~a.b.C` (Sphinx cross-references)
_CODE = re.compile(r"``(.+?)``")
_EMPHASIS = re.compile(r"(?<![\w*])\*(\S(?:[^*]*?\S)?)\*(?![\w*])")
_BULLET = re.compile(r"^[*-] ")


def _inline(text: str) -> str:
    """One paragraph's text as HTML: ``code`` and cross-references in <code>, *word* in <em>."""
    out = []
    # a cross-reference becomes code: its last name only when written with "~", as Sphinx does
    text = _ROLE.sub(lambda m: "``" + (m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2)) + "``", text)
    for i, part in enumerate(_CODE.split(text)):  # odd parts are code
        if i % 2:
            out.append(f"<code>{html.escape(part)}</code>")
        else:
            out.append(_EMPHASIS.sub(r"<em>\1</em>", html.escape(part)))
    return "".join(out)


def doc_html(doc: str) -> str:
    """A module docstring as simple HTML: paragraphs, bullet lists, ``::`` literal blocks, inline
    code; the leading ``attnlab lab NAME``: of the first line is dropped (the page shows it)."""
    doc = re.sub(r"^``attnlab lab [a-z]+``: *", "", inspect.cleandoc(doc))
    doc = doc[:1].upper() + doc[1:]
    blocks = re.split(r"\n\s*\n", doc)
    parts: list[str] = []
    literal = False
    for block in blocks:
        lines = block.split("\n")
        if literal and block.startswith((" ", "\t")):
            parts.append(f"<pre>{html.escape(_dedent(lines))}</pre>")
            continue
        literal = block.rstrip().endswith("::")
        if literal:
            block = block.rstrip()[:-1]  # "form::" -> "form:"
            lines = block.split("\n")
        if all(_BULLET.match(ln) or ln.startswith("  ") for ln in lines) and _BULLET.match(lines[0]):
            items: list[str] = []
            for ln in lines:
                if _BULLET.match(ln):
                    items.append(ln[2:].strip())
                else:
                    items[-1] += " " + ln.strip()
            parts.append("<ul>" + "".join(f"<li>{_inline(it)}</li>" for it in items) + "</ul>")
        else:
            parts.append(f"<p>{_inline(' '.join(ln.strip() for ln in lines))}</p>")
    return "\n".join(parts)


def _dedent(lines: list[str]) -> str:
    indent = min(len(ln) - len(ln.lstrip()) for ln in lines if ln.strip())
    return "\n".join(ln[indent:] for ln in lines)


def _value(v) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_value(x)}" for k, x in v.items())
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def render(entries: list[dict], *, tiny: bool) -> str:
    m = machine()
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>attnlab lab report</title><style>",
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}",
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:left;vertical-align:top;font-size:14px}img{max-width:100%;border:1px solid #eee}",
        "pre{background:#f6f8fa;padding:.6em;white-space:pre-wrap;font-size:13px}.err{color:#c5221f}",
        "code{background:#f6f8fa;padding:0 3px;font-size:92%}.doc{max-width:900px;line-height:1.45}",
        "</style></head><body><h1>attnlab lab report</h1>",
        f"<p>{html.escape(time.strftime('%Y-%m-%d %H:%M:%S %Z'))} &middot; {html.escape(m['platform'])} "
        f"&middot; {html.escape(str(m['processor']))} &middot; torch {html.escape(m['torch'])}, "
        f"{m['threads']} threads &middot; {sum(e['seconds'] for e in entries):.0f} s in all"
        f"{' &middot; <b>tiny sizes</b>' if tiny else ''}</p><ul>",
    ]
    parts += [f"<li><a href='#{e['name']}'>{e['name']}</a>: {html.escape(e['help'])}"
              f"{' <span class=err>(failed)</span>' if e['error'] else ''}</li>" for e in entries]
    parts.append("</ul>")
    for e in entries:
        parts.append(f"<h2 id='{e['name']}'>{e['name']}</h2>")
        parts.append(f"<p><code>attnlab lab {html.escape(e['name'])} {html.escape(' '.join(e['argv']))}</code>"
                     f" &middot; {e['seconds']:.1f} s</p>")
        parts.append(f"<div class=doc>{doc_html(e['doc'])}</div>")
        if e["error"]:
            parts.append(f"<pre class=err>{html.escape(e['error'])}</pre>")
            continue
        if e["json"].get("load_warning"):
            parts.append(f"<p class=err>{html.escape(e['json']['load_warning'])}</p>")
        parts.append(f"<img alt='{e['name']} plot' src='data:image/png;base64,{e['png']}'>")
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_value(v))}</td></tr>"
                       for k, v in e["json"]["headline"].items())
        parts.append(f"<h3>Headline numbers</h3><table>{rows}</table>")
        cfg = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_value(v))}</td></tr>"
                      for k, v in e["json"]["config"].items())
        parts.append(f"<details><summary>configuration</summary><table>{cfg}</table></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def run(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    entries = [_run_one(name, args.out, args.tiny) for name in args.only]
    page = args.out / "report.html"
    page.write_text(render(entries, tiny=args.tiny))
    summary = {e["name"]: ({"error": e["error"]} if e["error"] else e["json"]["headline"]) for e in entries}
    (args.out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    failed = [e["name"] for e in entries if e["error"]]
    print(f"wrote {page}" + (f" ({len(failed)} failed: {', '.join(failed)})" if failed else ""))
    return 1 if failed else 0
