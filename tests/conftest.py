"""Fixtures shared by every test directory."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from attnlab.data import cifar10
from attnlab.tasks import TASKS


def write_cifar(root: Path, per_batch: int = 10, *, seed: int = 0, named_batches: bool = False) -> Path:
    """A small ``root/cifar-10-batches-py/`` in the real format (the pickled batches, protocol 2,
    Python 2 strings): every training and test batch holds ``per_batch`` random uint8 images drawn
    in file order from one generator seeded ``seed``, labelled 0, 1, ..., 9, 0, ...

    ``named_batches`` writes each file's name as its ``batch_label`` (else ``"batch"``: only the
    bytes differ, not the data). Returns the folder.
    """
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(seed)
    for name in cifar10.TRAIN_FILES + cifar10.TEST_FILES:
        images = torch.randint(0, 256, (per_batch, 3, 32, 32), generator=g, dtype=torch.uint8)
        labels = (torch.arange(per_batch) % 10).tolist()
        cifar10.write_batch(folder / name, images, labels, batch_label=name if named_batches else "batch")
    return folder



@pytest.fixture(scope="session", autouse=True)
def own_cache_dir(tmp_path_factory) -> Iterator[Path]:
    """The tests' own cache folder (``$XDG_CACHE_HOME``): never the user's ``~/.cache/attnlab``, where
    ``attnlab bench peak`` saves the CPU's measured peak and the data caches live."""
    import os

    from torch.utils.cpp_extension import get_default_build_root

    # C++ extensions (the decoding step) keep one build folder across test sessions, as a user's
    # would: a build takes about 20 s, and torch rebuilds it when the source changes.
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(Path(get_default_build_root(), "attnlab-tests")))
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield Path(os.environ["XDG_CACHE_HOME"])
    if before is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = before


def pytest_collection_modifyitems(config, items) -> None:
    """Tests marked ``needs_compiler`` skip where this machine cannot build attnlab's C++ extensions."""
    from attnlab.native import can_build_native

    if can_build_native():
        return
    skip = pytest.mark.skip(reason="needs a C++ compiler, ninja and Python's headers (attnlab.native.can_build_native)")
    for item in items:
        if "needs_compiler" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def native_built(own_cache_dir) -> None:
    """The C++ decoding step, attention kernel and AdamW step, built (or loaded) before any test
    where this machine can build them, since ``ATTNLAB_DECODE=auto``, ``ATTNLAB_ATTENTION=auto`` and
    ``ATTNLAB_ADAMW=auto``, the defaults, use them: so no test's output carries the one-time
    "compiling" line, and commands run in subprocesses load the builds."""
    from attnlab.attention_kernel import KERNEL
    from attnlab.engine.adamw_kernel import kernel
    from attnlab.models.gpt_step_build import native_for

    native_for("auto")
    KERNEL.auto()
    kernel("auto")

@pytest.fixture(scope="session")
def make_cifar() -> Callable[..., Path]:
    """:func:`write_cifar`, for tests and fixtures of any scope: ``make_cifar(root, per_batch=10)``."""
    return write_cifar


def write_review_tsvs(root: Path, sizes: dict[str, int], review: Callable[[bool], str]) -> None:
    """The course's review files ``root/NAME.tsv`` (``id<TAB>label<TAB>text``), ``sizes[NAME]`` rows
    each, labels alternating neg/pos, texts from ``review(positive)`` in file order."""
    for name, n in sizes.items():
        with open(root / f"{name}.tsv", "w") as f:
            for i in range(n):
                label = "pos" if i % 2 else "neg"
                f.write(f"{name}{i}\t{label}\t{review(label == 'pos')}\n")


def write_word_vectors(path: Path, words: list[str], rng: random.Random, dim: int = 6) -> None:
    """GloVe-format vectors (``word v1 ... vD`` per line), Gaussian values drawn from ``rng``."""
    with open(path, "w") as f:
        for w in words:
            f.write(w + " " + " ".join(f"{rng.gauss(0, 1):.4f}" for _ in range(dim)) + "\n")


@pytest.fixture(scope="session")
def make_review_files() -> tuple[Callable[..., None], Callable[..., None]]:
    """``(write_review_tsvs, write_word_vectors)``, for fixtures of any scope."""
    return write_review_tsvs, write_word_vectors


class _RangeHandler(BaseHTTPRequestHandler):
    server: FileServer

    def do_GET(self):  # noqa: N802
        srv = self.server
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        srv.ranges.append(rng)
        start = int(rng.split("=")[1].split("-")[0]) if rng and srv.honour_range else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if srv.cut_at is not None:  # a dropped connection, once
            self.wfile.write(body[start:start + srv.cut_at])
            srv.cut_at = None
            self.close_connection = True
            return
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


class FileServer(ThreadingHTTPServer):
    """A local HTTP server for download tests (never the internet). It serves ``files`` (path ->
    bytes, anything else is 404) with HTTP Range support and records each request's Range header in
    ``ranges``; ``honour_range = False`` answers every request with the whole file (200), and
    ``cut_at = N`` drops the next response after N bytes."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RangeHandler)
        self.files: dict[str, bytes] = {}
        self.ranges: list[str | None] = []
        self.honour_range = True
        self.cut_at: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    """A started :class:`FileServer`, shut down after the test."""
    httpd = FileServer()
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def write_pairs(path: Path, *, alternates: bool = True) -> Path:
    """A small English-French pair file in the layout of manythings.org's ``fra.txt``: 25
    generated sentences (5 subjects x 5 adjectives), each with a third (attribution) column and,
    with ``alternates``, a second translation of the same English sentence."""
    subjects = [("I am", "je suis"), ("you are", "tu es"), ("he is", "il est"), ("we are", "nous sommes"),
                ("they are", "ils sont")]
    words = [("cold", "froid"), ("tired", "fatigué"), ("happy", "heureux"), ("here", "ici"), ("late", "en retard")]
    lines = []
    for en, fr in subjects:
        for a, b in words:
            lines.append(f"{en} {a}.\t{fr} {b}.\tCC-BY 2.0 (France) Attribution: tatoeba.org")
            if alternates:
                lines.append(f"{en} {a}.\t{fr.capitalize()} {b} !")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def task_inputs(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """Small input files in the real formats for every task of :data:`attnlab.tasks.TASKS` that
    reads some, as ``{task: {INPUTS field: path}}``, ``{}`` for a task that reads none (toy
    generates its data). The tiny presets train on them in about a second; the text task's word vectors let
    any of its models train (logreg, the default, needs them)."""
    root = tmp_path_factory.mktemp("task-inputs")
    write_cifar(root)
    (root / "text.txt").write_text("\n\n".join(f"A{i % 4}:\nthe cat {'sat' if i % 2 else 'ran'} on mat {i % 9} ."
                                               for i in range(80)))
    rng = random.Random(0)
    words = "good great bad awful the movie plot was and".split()
    write_review_tsvs(root, {"train": 40}, lambda positive: " ".join(rng.choice(words) for _ in range(12)))
    write_word_vectors(root / "vectors.txt", words, rng)
    write_pairs(root / "pairs.tsv")
    return {task: {} for task in TASKS} | {
        "gpt": {"data": root / "text.txt"},
        "lstm-lm": {"data": root / "text.txt"},
        "vit": {"data_dir": root},
        "text": {"train": root / "train.tsv", "embeddings": root / "vectors.txt", "cache_dir": root / "cache"},
        "translate": {"data": root / "pairs.tsv"},
    }


@pytest.fixture(scope="session")
def task_flags(task_inputs) -> dict[str, list[str]]:
    """:func:`task_inputs` as command-line flags (each INPUTS field is one: data_dir -> --data-dir)."""
    return {task: [arg for name, path in fields.items() for arg in (f"--{name.replace('_', '-')}", str(path))]
            for task, fields in task_inputs.items()}
