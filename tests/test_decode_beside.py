"""tools/decode_beside.py: decoding alone, beside a busy process and after it left, in one process."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "decode_beside.py"


def test_it_times_the_three_phases_and_reports_the_watch():
    done = subprocess.run([sys.executable, str(SCRIPT), "--words", "8", "--runs", "1"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["ms", "alone", "beside", "after"]
    assert len(lines[3].split("a new generation")[0].split()) == 3 + 4  # "after it left" + 1 + 3 runs
    assert lines[1].endswith(("switched: False", "switched: True"))
