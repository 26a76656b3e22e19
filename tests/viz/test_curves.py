"""`attnlab curves`: learning curves from a run's metrics.jsonl."""

from __future__ import annotations

import json

import pytest
from matplotlib.axes import Axes
from PIL import Image

from attnlab.cli import main

# A run's log written by hand: a training line (no validation: not a point), two validations,
# and one whose accuracy is NaN (JSON holds it as the string "nan": not a point either).
HAND_RECORDS = [
    {"step": 1, "epoch": 0, "train_loss": 2.0, "lr": 0.1},
    {"step": 2, "epoch": 1, "train_seconds": 0.5, "val_accuracy": 0.25, "val_loss": 1.5},
    {"step": 4, "epoch": 2, "train_seconds": 1.25, "val_accuracy": "nan", "val_loss": 1.0},
    {"step": 6, "epoch": 3, "train_seconds": 2.0, "val_accuracy": 0.75},
]


@pytest.fixture
def drawn(monkeypatch):
    """Every line the command draws, as (label, xs, ys): read back from the Line2D objects that
    ``Axes.plot`` returns, i.e. the data the PNG is rendered from."""
    lines = []
    plot = Axes.plot

    def recording_plot(self, *args, **kwargs):
        out = plot(self, *args, **kwargs)
        lines.extend(out)
        return out

    monkeypatch.setattr(Axes, "plot", recording_plot)

    def read() -> list[tuple[str, list[float], list[float]]]:
        got = [(line.get_label(), [float(v) for v in line.get_xdata()], [float(v) for v in line.get_ydata()])
               for line in lines]
        lines.clear()
        return got

    return read


def hand_run(tmp_path):
    run = tmp_path / "hand"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in HAND_RECORDS))
    return run


def test_curves_plot_exactly_the_logged_points(tmp_path, drawn):
    run = hand_run(tmp_path)
    out = tmp_path / "curve.png"
    assert main(["curves", str(run), "--out", str(out)]) == 0
    assert drawn() == [("hand", [0.5, 2.0], [0.25, 0.75])]  # val_accuracy against train_seconds, by hand
    assert out.is_file()
    assert main(["curves", str(run), "--x", "step", "--label", "mine", "--out", str(out)]) == 0
    assert drawn() == [("mine", [2.0, 6.0], [0.25, 0.75])]
    assert main(["curves", str(run), "--x", "epoch", "--y", "val_loss", "--out", str(out)]) == 0
    assert drawn() == [("hand", [1.0, 2.0], [1.5, 1.0])]


def test_curves_of_a_run(tmp_path, capsys, drawn):
    run = tmp_path / "run"
    assert main(["train", "toy", "--preset", "tiny", "--out", str(run), "--no-progress"]) == 0
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "val_accuracy" in r]
    assert len(evals) == 2 and all(0 < r["train_seconds"] for r in evals)  # each validation knows its time
    assert evals[0]["train_seconds"] < evals[1]["train_seconds"]
    other = hand_run(tmp_path)
    out = tmp_path / "curve.png"
    drawn()  # forget anything training drew
    assert main(["curves", str(run), str(other), "--label", "a", "--label", "b", "--out", str(out)]) == 0
    assert drawn() == [  # one line per run, in order, with its own label and exactly its logged points
        ("a", [r["train_seconds"] for r in evals], [r["val_accuracy"] for r in evals]),
        ("b", [0.5, 2.0], [0.25, 0.75]),
    ]
    with Image.open(out) as im:
        assert im.size == (660, 440) and len(set(im.convert("L").tobytes())) > 10  # a drawing, not blank
    assert main(["curves", str(run), "--y", "val_bogus", "--out", str(out)]) == 2
    assert "has no records with both 'train_seconds' and 'val_bogus'" in capsys.readouterr().err
    assert main(["curves", str(tmp_path), "--out", str(out)]) == 2
    assert "has no metrics.jsonl" in capsys.readouterr().err
