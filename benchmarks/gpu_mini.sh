#!/usr/bin/env bash
# One device call (a lent GPU machine, 10-minute calls): the `mini-snell` protocol (Snell et al.:
# 30-way 1-shot and 20-way 5-shot training, 15 queries, Adam 1e-3 halved every 2000 episodes,
# 20,000 episodes, best on validation, 2000 test episodes), in parts that resume; then, once its
# cells are done, `cub-chen` (Chen et al.'s CUB schedule: 60,000 / 40,000 episodes at 1 / 5-shot,
# issue 19) the same way, from CUB_DATA (default shared/data/cub) into .device/cub-chen.
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
# Writes into $OUT: gpu.txt, wall.txt, run-<set>-<method>-<shot>.log, results-<set>.tgz (results,
# per-episode files, logs, configs), state-<set>.tgz (checkpoints and finished models, to carry
# back). SETS (default "mini-snell cub-chen") chooses the presets, in order.
# Usage there: LIMIT=540 COMMIT=<sha> bash benchmarks/gpu_mini.sh
# Between calls, here, for each set S: mkdir -p .device/S && tar xzf OUT/results-S.tgz -C .device/S
#   && tar xzf OUT/state-S.tgz -C .device   (then carry .device/S along with the next call)
# Dry run on a CPU (a few episodes, checks the plumbing): DRY=1 bash benchmarks/gpu_mini.sh
#   (DRY_OUT=DIR: the folder that gets one sub-folder per set; default $OUT)
set -uo pipefail
LIMIT=${LIMIT:-540}
PARTS=${PARTS:-protonet trm cosine}
DRY=${DRY:-}
root=$(pwd)
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
DATA=${DATA:-}
if [ -z "$DATA" ]; then
  for candidate in "$root/.device/miniimagenet" "$root/shared/data/miniimagenet" \
                   "$root/../shared/data/miniimagenet"; do
    [ -d "$candidate" ] && DATA=$candidate && break
  done
fi
CUB_DATA=${CUB_DATA:-}
if [ -z "$CUB_DATA" ]; then
  for candidate in "$root/.device/cub" "$root/shared/data/cub" "$root/../shared/data/cub"; do
    [ -d "$candidate" ] && CUB_DATA=$candidate && break
  done
fi
SETS=${SETS:-mini-snell cub-chen}
for set_name in $SETS; do  # refused before any work: a typo must not lose a 10-minute call
  case $set_name in mini-snell|cub-chen) ;; *) echo "unknown set $set_name; valid: mini-snell cub-chen" >&2; exit 2 ;; esac
done
if [ -n "$DRY" ]; then  # this checkout's venv, a few episodes on the CPU
  python=$root/.venv/bin/python
  device=(--device cpu --threads 1 --train-episodes 4 --val-every 2 --val-episodes 5
          --test-episodes 20 --checkpoint-every 2)
  outs=${DRY_OUT:-$OUT}
else
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    "$root"/.device/whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
  export FEWSHOT_BENCH_COMMIT=${COMMIT:-unknown}
  export FEWSHOT_BENCH_CACHE=/tmp/cache
  python=python3
  device=(--device cuda --prefetch 4)
  outs=/tmp
  for set_name in $SETS; do
    [ -d "$root/.device/$set_name" ] && cp -r "$root/.device/$set_name" "/tmp/$set_name"
  done
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
  "$python" -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/gpu.txt"
fi
export PYTHONUNBUFFERED=1
start=$(date +%s)
left() { echo $(( LIMIT - ($(date +%s) - start) )); }

# Decode a set's images into the cache once, before the two processes of a method would both
# build it; a set whose data is missing or does not load is skipped, the others still run.
decode() {
  "$python" - "$1" "$2" <<'PY'
import sys
from pathlib import Path
from bench.registry import DATASETS
name, root = sys.argv[1], sys.argv[2]
adapter = DATASETS.get(name)(DATASETS.get(name).Config(), Path(root))
for split in ("train", "val", "test"):
    print(name, split, adapter.load(split).n_classes, "classes")
PY
}

for set_name in $SETS; do
  case $set_name in
    mini-snell) data=$DATA dataset=mini-imagenet ;;
    cub-chen) data=$CUB_DATA dataset=cub ;;
  esac
  [ "$(left)" -gt 30 ] || break
  if [ -z "$data" ] || ! decode "$dataset" "$data"; then
    echo "$set_name: no loadable $dataset data (${data:-not found}); skipped" | tee -a "$OUT/wall.txt"
    continue
  fi
  echo "$set_name: cache ready after $(( $(date +%s) - start )) s" | tee -a "$OUT/wall.txt"
  out=$outs/$set_name
  for method in $PARTS; do
    seconds=$(left)
    [ "$seconds" -gt 30 ] || break 2
    for shot in 1 5; do
      timeout -s TERM -k 30 "$seconds" "$python" -m bench.cli run --preset "$set_name" \
        --methods "$method" --shots "$shot" --data-root "$data" "${device[@]}" --out "$out" \
        > "$OUT/run-$set_name-$method-$shot.log" 2>&1 &
    done
    wait
    echo "$set_name $method: stopped or done after $(( $(date +%s) - start )) s" \
      | tee -a "$OUT/wall.txt"
  done
done
for log in "$OUT"/run-*.log; do [ -f "$log" ] && tail -n 4 "$log"; done
# Results and resumable state come back separately: the returned files have a size limit.
for set_name in $SETS; do
  out=$outs/$set_name
  [ -d "$out" ] || continue
  tar czf "$OUT/results-$set_name.tgz" -C "$out" --exclude=./models --exclude=./checkpoints \
    --exclude=./locks --exclude=./pretrained .
  tar czf "$OUT/state-$set_name.tgz" -C "$outs" "$set_name/checkpoints" "$set_name/models" \
    "$set_name/pretrained" 2>/dev/null || true
done
