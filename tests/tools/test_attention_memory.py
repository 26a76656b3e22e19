"""tools/attention_memory.py: bench attention's memory gap, taken apart by projection layout."""

import json


def test_every_variant_is_torchs_function_and_the_time_major_one_has_torchs_memory_on_the_cpu(tmp_path, tool):
    out = tmp_path / "am.json"
    done = tool("attention_memory.py", "--batch", "2", "--dim", "32", "--heads", "4", "--lengths", "16", "40",
                "--json", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {(r["T"], r["variant"]): r for r in json.loads(out.read_text())["rows"]}
    assert sorted({v for _, v in rows}) == ["ours", "ours-2d", "ours-tbd", "torch"]
    for (T, variant), r in rows.items():
        assert r["max_abs_diff"] < 1e-5, (T, variant)  # the same function, fp32 on the CPU
        # torch's layout, time-major through the projections, is torch's module op for op on the
        # CPU: the same bits and the same peak (so it does isolate the layout on a GPU)
        if variant == "ours-tbd":
            assert r["max_abs_diff"] == 0 and r["peak_mib"] == rows[T, "torch"]["peak_mib"]
        assert r["peak_mib"] > 0
    assert "| 40 | ours-tbd |" in done.stdout


def test_explain_needs_cuda_and_says_so(tool):
    done = tool("attention_memory.py", "--explain", timeout=60)
    assert done.returncode == 2
    assert "--explain reads the CUDA allocator's history: it needs --device cuda" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_variant_that_strays_from_torchs_output_fails_the_run(tool):
    done = tool("attention_memory.py", "--batch", "1", "--dim", "16", "--heads", "2", "--lengths", "8",
                "--tolerance", "-1", timeout=60)  # no difference passes a negative tolerance
    assert done.returncode == 1 and "compute something else than torch's module" in done.stderr
