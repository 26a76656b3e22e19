"""``attnlab bench translate``: decoding speed of a trained translation model, in sentences/s.

``--sentences`` distinct source sentences spread evenly over the run's test split (its recorded
pair file, split as the run split it; fra.txt is sorted by length) are translated in batches of
``--batch-size`` sentences of similar length, three ways: greedy with the decoder's key/value cache, greedy without it
(every step re-runs the decoder over the whole prefix; the Transformer only, an RNN's state is
its cache), and beam search (``--beam``, default 4). Each is timed ``--repeats`` times in
interleaved rounds (:mod:`attnlab.measure`), the medians reported; the cached and uncached greedy
translations must be identical token for token (the benchmark fails otherwise).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from attnlab.bench._common import report_load
from attnlab.errors import AttnlabError
from attnlab.measure import LoadWatch, median, time_interleaved
from attnlab.options import require_at_least

HELP = "decoding speed of a translation model: greedy with and without the cache, and beam search"
EXAMPLE = """\
attnlab bench translate --checkpoint runs/translate-transformer
attnlab bench translate --checkpoint runs/translate-rnn --sentences 200 --beam 4"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", metavar="PATH", required=True, help="a trained `attnlab train translate` run")
    parser.add_argument("--data", metavar="FILE", default=None,
                        help="the pair file (default: the one the run was trained on)")
    parser.add_argument("--sentences", type=int, default=500, help="test sources to translate (default 500)")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences decoded together (default 64)")
    parser.add_argument("--beam", type=int, default=4, help="beam width of the beam-search path (default 4)")
    parser.add_argument("--repeats", type=int, default=1, help="timed rounds (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")


def _sources(args: argparse.Namespace, meta: dict[str, Any]) -> list[str]:
    from attnlab.data.pairs import read_pairs, split_pairs

    path = args.data or meta.get("inputs", {}).get("pairs", {}).get("path")
    if not path or not Path(path).is_file():
        raise AttnlabError(f"the run's pair file {path} is not there; pass --data FILE")
    d = meta["config"]["data"]
    pairs = read_pairs(path)
    if d.get("max_pairs"):
        pairs = pairs[: d["max_pairs"]]
    test = split_pairs(pairs, val_fraction=d["val_fraction"], test_fraction=d["test_fraction"],
                       seed=d["split_seed"]).test
    sources = list(dict.fromkeys(s for s, _ in test))
    return sources[:: max(1, len(sources) // args.sentences)][: args.sentences]  # spread over the file's
    # order (fra.txt runs from the shortest sentences to the longest)


def run(args: argparse.Namespace) -> int:
    from attnlab.data.bpe import BPETokenizer
    from attnlab.models.decoding_seq2seq import beam_search, greedy_decode
    from attnlab.tasks import load_trained

    require_at_least(args, 1, "sentences", "batch-size", "beam", "repeats", "threads")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    load = LoadWatch.start()
    _, model, meta = load_trained(args.checkpoint, tasks=("translate",), what="a translation model")
    tok = meta["tokenizer"]
    source = BPETokenizer.from_json(tok["source"])
    target = source if tok.get("shared") else BPETokenizer.from_json(tok["target"])
    bos, eos, pad = (target.token_id(t) for t in ("<s>", "</s>", "<pad>"))
    max_len = int(meta["config"]["model"]["max_len"])
    texts = _sources(args, meta)
    ids = sorted((i[:max_len] for i in source.encode_batch(texts)), key=len)
    batches = []
    for start in range(0, len(ids), args.batch_size):
        chunk = ids[start:start + args.batch_size]
        src = torch.full((len(chunk), max(1, max(map(len, chunk)))), pad, dtype=torch.long)
        for row, piece_ids in enumerate(chunk):
            src[row, : len(piece_ids)] = torch.tensor(piece_ids, dtype=torch.long)
        batches.append(src)
    outputs: dict[str, list[torch.Tensor]] = {}

    def path(name: str, cache: bool = True, beam: int = 1):
        def fn() -> None:
            if beam == 1:
                outputs[name] = [greedy_decode(model, b, bos=bos, eos=eos, pad=pad, max_len=max_len + 1,
                                               cache=cache).tokens for b in batches]
            else:
                outputs[name] = [beam_search(model, b, bos=bos, eos=eos, pad=pad, max_len=max_len + 1, beam=beam,
                                             length_penalty=float(meta["config"]["decode"]["length_penalty"])).tokens
                                 for b in batches]
        return fn

    fns = {"greedy, cache": path("cached")}
    transformer = meta["config"]["model"]["name"] == "transformer"
    if transformer:
        fns["greedy, no cache"] = path("uncached", cache=False)
    fns[f"beam {args.beam}"] = path("beam", beam=args.beam)
    greedy_decode(model, batches[0][:2], bos=bos, eos=eos, pad=pad, max_len=2)  # warm-up (first calls are slow)
    samples = time_interleaved(fns, repeats=args.repeats, warmup=0)
    print(f"decoding {len(texts)} test sources of {args.checkpoint} ({meta['config']['model']['name']}), "
          f"batches of {args.batch_size}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'path':<18} {'s':>8} {'sentences/s':>12}")
    for name, s in samples.items():
        print(f"{name:<18} {median(s):>8.2f} {len(texts) / median(s):>12.1f}")
    if transformer:
        same = all(torch.equal(a, b) for a, b in zip(outputs["cached"], outputs["uncached"]))
        print(f"identical greedy tokens with and without the cache: {'yes' if same else 'NO'}")
        if not same:
            raise AttnlabError("the cached and uncached greedy paths decoded different tokens; this is a bug")
    report_load(load)
    return 0
