"""``attnlab explore --serve``: the explorer page for inputs typed into a form, on this machine only.

A small ``http.server`` bound to 127.0.0.1 (never to all interfaces): ``GET /`` answers the page
with a form, ``POST /`` answers the page for the text typed (or, for a ViT, the image uploaded).
Requests are handled one at a time, so the model is never called twice at once. Input larger than
the limits is refused with status 413 and a message saying the limit; a request whose ``Host`` is
not this loopback address is refused (a web page elsewhere cannot reach the model through DNS
rebinding).
"""

from __future__ import annotations

import sys
import urllib.parse
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from attnlab.errors import AttnlabError
from attnlab.viz.explorer import Explorer, Request, Sampling
from attnlab.viz.explorer_page import render, render_form

__all__ = ["ServeOptions", "ExplorerApp", "make_server", "serve", "HOST"]

HOST = "127.0.0.1"


@dataclass
class ServeOptions:
    max_text_bytes: int = 20_000  # a typed text longer than this is refused
    max_upload_bytes: int = 4_000_000  # a request body (an uploaded image) larger than this is refused
    generate: int = 20  # a language model's default number of new tokens
    sampling: Sampling | None = None
    data_dir: str | None = None  # a ViT's test set, for image indices typed into the form


class TooLarge(AttnlabError):
    """Input over a limit: answered with status 413."""


class ExplorerApp:
    """Turns one request's fields into a page; no HTTP here, so it is tested without a socket."""

    def __init__(self, explorer: Explorer, options: ServeOptions | None = None, *,
                 initial: dict[str, Any] | None = None) -> None:
        self.explorer, self.options = explorer, options or ServeOptions()
        self.initial = initial  # the page ``GET /`` shows (the command line's input), if any

    def form(self, fields: dict[str, str], error: str | None = None) -> str:
        """The form (``explorer_form.html``) for this model's kind, refilled with ``fields``."""
        o, kind = self.options, self.explorer.kind
        off = {True: "", False: "disabled hidden"}  # a disabled fieldset is neither shown nor sent
        return render_form({
            "TEXTOFF": off[kind != "image"], "TEXTLABEL": "Prompt" if kind == "lm" else "Text",
            "TEXT": fields.get("text", ""),
            "LMOFF": off[kind == "lm"], "GENERATE": fields.get("generate", str(o.generate)),
            "IMAGEOFF": off[kind == "image"],
            "INDICESOFF": off[kind == "image" and o.data_dir is not None], "IMAGES": fields.get("images", ""),
            "HOST": HOST, "LIMIT": f"{o.max_upload_bytes if kind == 'image' else o.max_text_bytes:,}",
            "ERROROFF": "" if error else "hidden", "ERROR": error or "",
        })

    def page(self, fields: dict[str, str] | None = None, files: dict[str, bytes] | None = None) -> tuple[int, str]:
        """(status, HTML) for the submitted ``fields`` and ``files``; no fields: the empty form."""
        fields, files = fields or {}, files or {}
        if not fields and not files:
            return 200, render(self.initial, form=self.form({}))
        try:
            data = self.explore(fields, files)
        except TooLarge:
            raise
        except AttnlabError as exc:
            return 400, render(None, form=self.form(fields, str(exc)))
        return 200, render(data, form=self.form(fields))

    def explore(self, fields: dict[str, str], files: dict[str, bytes]) -> dict[str, Any]:
        """The page's data for a submitted form: its fields as the explorer's one :class:`Request`."""
        e, o = self.explorer, self.options
        text = fields.get("text", "")
        if len(text.encode("utf-8")) > o.max_text_bytes:
            raise TooLarge(f"the text is {len(text.encode('utf-8')):,} bytes; the limit is {o.max_text_bytes:,}")
        if e.kind == "image":
            request = Request()
            if files.get("image"):
                request.upload, request.upload_name = files["image"], fields.get("image_name") or "the upload"
            elif fields.get("images", "").strip() and o.data_dir:
                try:
                    request.images = [int(i) for i in fields["images"].replace(",", " ").split()]
                except ValueError:
                    raise AttnlabError("test images are given by their indices, e.g. 0 5 7") from None
        else:
            try:
                n = int(fields.get("generate") or 0) if e.kind == "lm" else 0
            except ValueError:
                raise AttnlabError("generate must be a whole number of tokens") from None
            request = Request(text=text, generate=n)
        data = e.answer(request, sampling=o.sampling, data_dir=o.data_dir)
        if data is None:
            raise AttnlabError("choose an image to upload")
        return data


def parse_body(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    """Form fields and uploaded files of a urlencoded or multipart body."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        try:
            pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise AttnlabError("the form is not UTF-8 text") from None
        return dict(pairs), {}
    if not content_type.startswith("multipart/form-data"):
        raise AttnlabError(f"send the form as multipart/form-data or urlencoded, not {content_type or 'nothing'}")
    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        if part.get_filename() is not None:
            files[name] = payload
            fields[f"{name}_name"] = str(part.get_filename())
        else:
            try:
                fields[name] = payload.decode("utf-8")
            except UnicodeDecodeError:
                raise AttnlabError(f"the form field {name} is not UTF-8 text") from None
    return fields, files


def make_server(app: ExplorerApp, port: int = 8000) -> HTTPServer:
    """An HTTP server for ``app`` on 127.0.0.1:``port`` (0 picks a free port: ``server.server_port``)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "attnlab-explore"

        def log_message(self, format: str, *args: Any) -> None:
            print(f"{self.address_string()} {format % args}", file=sys.stderr)

        def send_page(self, status: int, text: str) -> None:
            body = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Security-Policy", "default-src 'none'; img-src data:; "
                             "style-src 'unsafe-inline'; script-src 'unsafe-inline'; form-action 'self'")
            self.end_headers()
            self.wfile.write(body)

        def refuse(self, status: int, message: str) -> None:
            self.close_connection = True
            self.send_page(status, render(None, form=app.form({}, message)))

        def host_ok(self) -> bool:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
            if host in (HOST, "localhost"):
                return True
            self.refuse(403, f"this server answers requests to {HOST} only")
            return False

        def do_GET(self) -> None:  # http.server calls do_<METHOD>
            if not self.host_ok():
                return
            if urllib.parse.urlsplit(self.path).path != "/":
                self.refuse(404, f"no page {self.path}; the explorer is at /")
                return
            self.send_page(*app.page())

        def do_POST(self) -> None:
            if not self.host_ok():
                return
            try:
                length = int(self.headers.get("Content-Length") or "")
            except ValueError:
                self.refuse(411, "the request has no Content-Length")
                return
            limit = app.options.max_upload_bytes
            if length > limit:
                self.refuse(413, f"input too large: {length:,} bytes; the limit is {limit:,} bytes")
                return
            body = self.rfile.read(length)
            try:
                fields, files = parse_body(self.headers.get("Content-Type", ""), body)
                status, page = app.page(fields, files)
            except TooLarge as exc:
                self.refuse(413, f"input too large: {exc}")
                return
            except AttnlabError as exc:
                self.refuse(400, str(exc))
                return
            self.send_page(status, page)

    return HTTPServer((HOST, port), Handler)


def serve(app: ExplorerApp, port: int = 8000) -> None:
    """Serve until Ctrl-C."""
    try:
        server = make_server(app, port)
    except OSError as e:
        raise AttnlabError(f"cannot listen on {HOST}:{port} ({e.strerror}); pass another --serve PORT") from None
    print(f"explorer at http://{HOST}:{server.server_port}/ (this machine only; Ctrl-C stops it)", file=sys.stderr,
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
