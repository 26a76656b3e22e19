"""``attnlab explore --serve``: the explorer page for inputs typed into a form, on this machine only.

A small ``http.server`` bound to 127.0.0.1 (never to all interfaces): ``GET /`` answers the page
with a form, ``POST /`` answers the page for the text typed (or, for a ViT, the image uploaded).

No client can stall the others: each connection has its own thread (at most
``max_connections`` at once; one more is answered 503 at once), every read waits at most
``timeout`` seconds and a request body must arrive within ``timeout`` in all, headers are
bounded, and ``Content-Length`` is checked before anything is read (missing: 411, not a
non-negative number: 400, over the limit: 413); after such an answer the server still reads what
the client sends for up to ``LINGER_S`` seconds before it closes, so that a client still uploading
gets the answer rather than "connection reset". The model itself runs for one request at a
time (:class:`ExplorerApp` holds a lock). A client that hangs up or times out costs one log line,
never a traceback. A request whose ``Host`` is not this loopback address is refused (a web page
elsewhere cannot reach the model through DNS rebinding).
"""

from __future__ import annotations

import socket
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from attnlab.errors import AttnlabError
from attnlab.viz.explorer import Explorer, Request, Sampling
from attnlab.viz.explorer_page import render, render_form

__all__ = ["ServeOptions", "ExplorerApp", "ExplorerServer", "make_server", "serve", "form_words", "HOST"]

HOST = "127.0.0.1"
LINGER_S = 2.0  # how long a refused request's unread body is still read, so that the client gets the answer
LINGER_BYTES = 64 * 2**20  # and how much of it at most


@dataclass
class ServeOptions:
    max_text_bytes: int = 20_000  # a typed text longer than this is refused
    max_upload_bytes: int = 4_000_000  # a request body (an uploaded image) larger than this is refused
    generate: int = 20  # a language model's default number of new tokens
    sampling: Sampling | None = None
    data_dir: str | None = None  # a ViT's test set, for image indices typed into the form
    timeout: float = 10.0  # seconds a client may leave any read waiting, and to send a whole request body
    max_connections: int = 16  # connections served at once; one more is answered 503 at once
    max_header_bytes: int = 16_384  # request line and headers together


class TooLarge(AttnlabError):
    """Input over a limit: answered with status 413."""


class ExplorerApp:
    """Turns one request's fields into a page; no HTTP here, so it is tested without a socket."""

    def __init__(self, explorer: Explorer, options: ServeOptions | None = None, *,
                 initial: dict[str, Any] | None = None) -> None:
        self.explorer, self.options = explorer, options or ServeOptions()
        self.initial = initial  # the page ``GET /`` shows (the command line's input), if any
        self._model = threading.Lock()  # one request at a time runs the model

    def form(self, fields: dict[str, str], error: str | None = None) -> str:
        """The form (``explorer_form.html``) for this model's kind, refilled with ``fields``."""
        o, kind = self.options, self.explorer.kind
        off = {True: "", False: "disabled hidden"}  # a disabled fieldset is neither shown nor sent
        return render_form({
            "TEXTOFF": off[kind != "image"], "TEXTLABEL": "Prompt" if kind == "lm" else "Text",
            "TEXT": fields.get("text", ""),
            "COMPARE": fields.get("compare", ""),
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
            with self._model:
                data = self.explore(fields, files)
        except TooLarge:
            raise
        except AttnlabError as exc:
            return 400, render(None, form=self.form(fields, form_words(str(exc))))
        return 200, render(data, form=self.form(fields))

    def explore(self, fields: dict[str, str], files: dict[str, bytes]) -> dict[str, Any]:
        """The page's data for a submitted form: its fields as the explorer's one :class:`Request`."""
        e, o = self.explorer, self.options
        text, compare = fields.get("text", ""), fields.get("compare", "")
        for what, typed in (("the text", text), ("the text to compare with", compare)):
            if len(typed.encode("utf-8")) > o.max_text_bytes:
                raise TooLarge(f"{what} is {len(typed.encode('utf-8')):,} bytes; the limit is {o.max_text_bytes:,}")
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
            request = Request(text=text, generate=n, compare=compare if compare.strip() else None)
        data = e.answer(request, sampling=o.sampling, data_dir=o.data_dir)
        if data is None:
            raise AttnlabError("choose an image to upload")
        return data


# The explorer's errors name the command line's flags; a served request was typed into the form, so its
# error names the form's fields instead (the most specific phrases first). Flags the form has no field for
# (--max-tokens, --max-images) are the server's settings, and say so.
_FORM_WORDS = (
    ("pass a text, or --prompt and --generate N", "type a prompt, or a number of tokens to Generate"),
    ("pass --images, --image-file or --image-dir", "upload an image or type test image indices"),
    ("--images, --image-file and --image-dir", "images"),
    ("--prompt and --generate", "a prompt and Generate"),
    ("pass INPUT (or --prompt) too", "type a text above it too"),
    ("--compare", "Compare with"),
    ("--generate", "Generate"),
    ("--images", "test images"),
    ("--prompt", "the prompt"),
    ("pass a TEXT", "type a text"),
    ("pass a smaller image", "upload a smaller image"),
    ("pass a PNG or JPEG file", "upload a PNG or JPEG file"),
    ("--max-tokens", "the server's --max-tokens setting"),
    ("--max-images", "the server's --max-images setting"),
)


def form_words(message: str) -> str:
    """An explorer error in the words of the form it answers (:data:`_FORM_WORDS`)."""
    for flag, words in _FORM_WORDS:
        message = message.replace(flag, words)
    return message


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


class ExplorerServer(ThreadingHTTPServer):
    """A thread per connection, at most ``max_connections`` at once; errors are one log line."""

    daemon_threads = True  # Ctrl-C does not wait for a client that keeps its connection open

    def __init__(self, app: ExplorerApp, port: int) -> None:
        self.app = app
        self.slots = threading.BoundedSemaphore(app.options.max_connections)
        super().__init__((HOST, port), _handler(app))

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                                b"Connection: close\r\n\r\ntoo many connections; try again\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (TimeoutError, socket.timeout)):
            why = f"timed out after {self.app.options.timeout:g} s"
        elif isinstance(exc, (BrokenPipeError, ConnectionError)):
            why = "the client hung up"
        else:
            why = f"{type(exc).__name__}: {exc}"
        print(f"{client_address[0]}:{client_address[1]} dropped ({why})", file=sys.stderr)


def _handler(app: ExplorerApp) -> type[BaseHTTPRequestHandler]:
    """The request handler of ``app``: GET and POST /, everything bounded."""
    options = app.options

    class Handler(BaseHTTPRequestHandler):
        server_version = "attnlab-explore"
        timeout = options.timeout  # every read of the socket (StreamRequestHandler sets it)

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

        def request_ok(self) -> bool:
            """The headers are within bounds and name this loopback host."""
            size = len(self.requestline) + sum(len(k) + len(v) + 4 for k, v in self.headers.items())
            if size > options.max_header_bytes:
                self.refuse(431, f"the request headers are {size:,} bytes; the limit is {options.max_header_bytes:,}")
                return False
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
            if host in (HOST, "localhost"):
                return True
            self.refuse(403, f"this server answers requests to {HOST} only")
            return False

        def do_GET(self) -> None:  # http.server calls do_<METHOD>
            if not self.request_ok():
                return
            if urllib.parse.urlsplit(self.path).path != "/":
                self.refuse(404, f"no page {self.path}; the explorer is at /")
                return
            self.send_page(*app.page())

        def do_POST(self) -> None:
            if not self.request_ok():
                self.linger()
                return
            body = self.read_body()
            if body is None:
                self.linger()
                return
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

        def linger(self) -> None:
            """After an answer sent before the request's body was read: end the answer (the client
            sees the end of the stream) and read what the client still sends, for at most
            :data:`LINGER_S` seconds and :data:`LINGER_BYTES`, before the connection closes. Closing
            with unread bytes resets the connection, and a client still sending its upload would
            see "connection reset" or "broken pipe" instead of the answer."""
            deadline, received = time.monotonic() + LINGER_S, 0
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                while received < LINGER_BYTES and (left := deadline - time.monotonic()) > 0:
                    self.connection.settimeout(left)
                    chunk = self.rfile.read1(65536)
                    if not chunk:
                        break
                    received += len(chunk)
            except OSError:  # timed out, or the client is gone: close all the same
                pass

        def read_body(self) -> bytes | None:
            """The body its Content-Length announces, read within ``timeout`` in all; None once refused."""
            announced = self.headers.get("Content-Length")
            if announced is None:
                self.refuse(411, "the request has no Content-Length")
                return None
            if not announced.strip().isdigit():
                self.refuse(400, f"Content-Length {announced!r} is not a number of bytes")
                return None
            length, limit = int(announced), options.max_upload_bytes
            if length > limit:
                self.refuse(413, f"input too large: {length:,} bytes; the limit is {limit:,} bytes")
                return None
            deadline, chunks, left = time.monotonic() + options.timeout, [], length
            while left:
                if time.monotonic() > deadline:
                    raise TimeoutError("the request body came too slowly")
                chunk = self.rfile.read1(min(left, 65536))
                if not chunk:
                    raise ConnectionError("the client hung up before its whole request body came")
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks)

    return Handler


def make_server(app: ExplorerApp, port: int = 8000) -> ExplorerServer:
    """A server for ``app`` on 127.0.0.1:``port`` (0 picks a free port: ``server.server_port``)."""
    return ExplorerServer(app, port)


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
