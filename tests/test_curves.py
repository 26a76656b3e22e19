"""`attnlab curves`: learning curves from a run's metrics.jsonl."""

from __future__ import annotations

import json

from PIL import Image

from attnlab.cli import main


def test_curves_of_a_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "toy", "--preset", "tiny", "--out", str(run), "--no-progress"]) == 0
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "val_accuracy" in r]
    assert len(evals) == 2 and all(0 < r["train_seconds"] for r in evals)  # each validation knows its time
    assert evals[0]["train_seconds"] < evals[1]["train_seconds"]
    out = tmp_path / "curve.png"
    assert main(["curves", str(run), str(run), "--label", "a", "--label", "b", "--out", str(out)]) == 0
    with Image.open(out) as im:
        assert im.size == (660, 440) and len(set(im.convert("L").getdata())) > 10  # a drawing, not blank
    assert main(["curves", str(run), "--y", "val_bogus", "--out", str(out)]) == 2
    assert "has no records with both 'train_seconds' and 'val_bogus'" in capsys.readouterr().err
    assert main(["curves", str(tmp_path), "--out", str(out)]) == 2
    assert "has no metrics.jsonl" in capsys.readouterr().err
