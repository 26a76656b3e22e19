"""tools/train_beside.py: a training run that a busy process joins, and the resume its warning asks for."""


def test_it_reports_the_throughput_and_the_run(tmp_path, tool):
    """The plumbing, alone (the run ends before the busy process would start): the notice itself is
    tested in tests/test_threads.py and tests/engine/test_progress.py."""
    done = tool("train_beside.py", "--steps", "30", "--eval-every", "10", "--log-every", "5", "--after", "600",
                "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("char-cpu, 30 steps; load average")
    rows = {line.split()[0]: line for line in lines if line.startswith(("alone", "beside"))}
    logged = [step for label in ("alone", "beside") for step in
              [int(item.split(":")[0]) for item in rows[label].split()[1:] if ":" in item]]
    assert logged == [5, 10, 15, 20, 25, 30]  # every record, each once
    assert rows["beside"].split()[1:] == ["(no", "record)"]
    assert any(line.startswith("first run: exit 0;") and "steps 30" in line for line in lines)
    assert "no warning" in lines
    assert lines[-1].startswith("load average")
