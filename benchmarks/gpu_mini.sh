#!/usr/bin/env bash
# One device call (a lent GPU machine, 10-minute calls): the `mini-snell` protocol (Snell et al.:
# 30-way 1-shot and 20-way 5-shot training, 15 queries, Adam 1e-3 halved every 2000 episodes,
# 20,000 episodes, best on validation, 2000 test episodes), in parts that resume.
#
# Each call works on the methods of PARTS in order (default: protonet trm cosine, the most
# important first), both shots of a method at once (one process per shot on the one GPU), until
# LIMIT seconds are spent; a process cut by the limit gets SIGTERM, saves a checkpoint and exits,
# and the next call resumes it from .device/mini-snell (carry it back). A method whose cells
# are all in results.csv is skipped by `bench run` in seconds, so calling this again and again
# walks through protonet, then trm, then cosine.
#
# Needs, carried along: .device/whl/*.whl (fewshot-bench, learn2learn built for the device's
# Python, gym, gym_notices), and the images: DATA (default .device/miniimagenet, else
# shared/data/miniimagenet) holding images/ with train.csv, val.csv, test.csv (323 MB as JPEGs:
# more than one carry holds, so place them under shared/ or pass the learn2learn pickles).
# Writes into $OUT: gpu.txt, wall.txt, run-<method>-<shot>.log, results.tgz (results, per-episode
# files, logs, configs), state.tgz (checkpoints and finished models, to carry back).
# Usage there: LIMIT=540 COMMIT=<sha> bash benchmarks/gpu_mini.sh
# Between calls, here: mkdir -p .device/mini-snell && tar xzf OUT/results.tgz -C .device/mini-snell
#   && tar xzf OUT/state.tgz -C .device   (then carry .device/mini-snell along with the next call)
# Dry run on a CPU (a few episodes, checks the plumbing): DRY=1 bash benchmarks/gpu_mini.sh
set -uo pipefail
LIMIT=${LIMIT:-540}
PARTS=${PARTS:-protonet trm cosine}
DRY=${DRY:-}
root=$(pwd)
OUT=${OUT:-$(mktemp -d)}
DATA=${DATA:-}
if [ -z "$DATA" ]; then
  for candidate in "$root/.device/miniimagenet" "$root/shared/data/miniimagenet" \
                   "$root/../shared/data/miniimagenet"; do
    [ -d "$candidate" ] && DATA=$candidate && break
  done
fi
[ -n "$DATA" ] || { echo "no miniImageNet: set DATA=DIR (images/ + CSVs, or pickles)" >&2; exit 2; }
if [ -n "$DRY" ]; then  # this checkout's venv, a few episodes on the CPU
  python=$root/.venv/bin/python
  device=(--device cpu --threads 1 --train-episodes 4 --val-every 2 --val-episodes 5
          --test-episodes 20 --checkpoint-every 2)
  out=${DRY_OUT:-$OUT/mini-snell}
else
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    "$root"/.device/whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
  export FEWSHOT_BENCH_COMMIT=${COMMIT:-unknown}
  export FEWSHOT_BENCH_CACHE=/tmp/cache
  python=python3
  device=(--device cuda --prefetch 4)
  out=/tmp/mini-snell
  [ -d "$root/.device/mini-snell" ] && cp -r "$root/.device/mini-snell" "$out"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
  "$python" -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/gpu.txt"
fi
export PYTHONUNBUFFERED=1
start=$(date +%s)
left() { echo $(( LIMIT - ($(date +%s) - start) )); }

# Decode the images into the cache once, before the two processes of a method would both build it.
"$python" - "$DATA" <<'PY' || exit 1
import sys
from pathlib import Path
from bench.registry import DATASETS
adapter = DATASETS.get("mini-imagenet")(DATASETS.get("mini-imagenet").Config(), Path(sys.argv[1]))
for split in ("train", "val", "test"):
    print(split, adapter.load(split).n_classes, "classes")
PY
echo "cache ready after $(( $(date +%s) - start )) s" | tee "$OUT/wall.txt"

for method in $PARTS; do
  seconds=$(left)
  [ "$seconds" -gt 30 ] || break
  for shot in 1 5; do
    timeout -s TERM -k 30 "$seconds" "$python" -m bench.cli run --preset mini-snell \
      --methods "$method" --shots "$shot" --data-root "$DATA" "${device[@]}" --out "$out" \
      > "$OUT/run-$method-$shot.log" 2>&1 &
  done
  wait
  echo "$method: stopped or done after $(( $(date +%s) - start )) s" | tee -a "$OUT/wall.txt"
done
tail -n 4 "$OUT"/run-*.log
# Results and resumable state come back separately: the returned files have a size limit.
tar czf "$OUT/results.tgz" -C "$out" --exclude=./models --exclude=./checkpoints --exclude=./locks .
tar czf "$OUT/state.tgz" -C "$(dirname "$out")" "$(basename "$out")/checkpoints" \
  "$(basename "$out")/models" 2>/dev/null || true
