"""``attnlab export RUN --format hf --out DIR``: a trained model as a Hugging Face directory.

The directory (``config.json``, ``model.safetensors``, and the tokenizer or image-processor files
where the model has them) loads with ``transformers``' own classes (``GPT2LMHeadModel``,
``ViTForImageClassification``, ``BertForSequenceClassification``) and gives the same logits. The
family's exporter (``attnlab.pretrained.EXPORTERS``) writes into a fresh folder beside ``DIR``,
renamed into place only once complete: a failure leaves nothing, and ``DIR`` is never overwritten.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from attnlab.errors import AttnlabError

HELP = "write a trained model as a Hugging Face directory (transformers loads it with its own classes)"
EXAMPLE = """\
attnlab export runs/gpt --format hf --out exported/gpt     # then GPT2LMHeadModel.from_pretrained("exported/gpt")
attnlab export runs/vit --format hf --out exported/vit     # ViTForImageClassification"""
LOADERS = {"gpt": "GPT2LMHeadModel", "vit": "ViTForImageClassification", "text": "BertForSequenceClassification"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run directory (its best checkpoint) or a checkpoint directory")
    parser.add_argument("--format", choices=("hf",), default="hf",
                        help="hf: Hugging Face layout (config.json + model.safetensors + tokenizer files)")
    parser.add_argument("--out", required=True, metavar="DIR", help="a new (or empty) directory to write")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    _check_out(out)
    from attnlab.pretrained import exporter
    from attnlab.tasks import load_trained

    task, model, meta = load_trained(args.run)
    module = exporter(task)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        written = module.export(model, meta, work)
        if out.exists():
            out.rmdir()  # empty (checked above)
        work.rename(out)
    except OSError as exc:
        raise AttnlabError(f"cannot write {out} ({exc.strerror or exc}); free some space or choose another --out"
                           ) from exc
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    for path in written:
        print(out / path.name)
    if task == "gpt" and not any(p.name == "tokenizer.json" for p in written):
        kind = meta.get("tokenizer", {}).get("type", "word")
        print(f"note: this run's {kind} tokenizer has no transformers counterpart, so no tokenizer files were "
              f"written; the ids are attnlab's (meta.json of the run)", file=sys.stderr)
    loader = LOADERS.get(task, "the matching transformers class")
    print(f"load it with transformers: {loader}.from_pretrained({str(out)!r})", file=sys.stderr)
    return 0


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AttnlabError(f"--out {out} already exists and is not an empty directory; choose a new directory "
                           f"(export never overwrites)")
