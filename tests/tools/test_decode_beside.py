"""tools/decode_beside.py: decoding alone, beside a busy process and after it left, in one process."""


def test_it_times_the_three_phases_and_reports_the_watch(tool):
    done = tool("decode_beside.py", "--words", "8", "--runs", "1", "--settle", "0.2", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4 and lines[0].startswith("ms per word, 8 words, 2 threads")
    for line, label, runs in zip(lines[1:], ("alone", "beside", "after it left"), (1, 1, 4)):
        assert line.startswith(label)
        times = line[len(label):].split("switches")[0].split()
        assert len(times) == runs and all(float(t) > 0 for t in times)
        assert int(line.split("switches to one thread: ")[1].split(";")[0]) >= 0
    assert lines[3].endswith(("start on one thread", "start on all the threads"))
