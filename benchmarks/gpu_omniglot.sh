#!/usr/bin/env bash
# One device run (a lent GPU machine): the full `omniglot-snell` protocol (60-way 5-query
# training, Adam 1e-3 halved every 2000 episodes, EPISODES episodes per model), one process per
# (method, shot) model, all on the one GPU at once (each Conv-4 step leaves the GPU mostly idle).
# METHODS run first; LATER methods run in the time left of LIMIT seconds. A process cut by the
# limit saves a checkpoint (SIGTERM) that a later call resumes when .device/omniglot-snell is
# carried back. Expects .device/whl/*.whl (fewshot-bench, learn2learn built for the device's
# Python, gym, gym_notices) and .device/omniglot/*.zip carried along; writes into $OUT.
# Usage there: EPISODES=20000 LIMIT=470 COMMIT=<sha> bash benchmarks/gpu_omniglot.sh
set -uo pipefail
EPISODES=${EPISODES:-20000}
LIMIT=${LIMIT:-470}
METHODS=${METHODS:-protonet cosine}
LATER=${LATER-trm}  # LATER= (empty) runs nothing after METHODS
root=$(pwd)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
  "$root"/.device/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 FEWSHOT_BENCH_CACHE=/tmp/cache
export FEWSHOT_BENCH_COMMIT=${COMMIT:-unknown}
cd /tmp
out=/tmp/omniglot-snell
[ -d "$root/.device/omniglot-snell" ] && cp -r "$root/.device/omniglot-snell" "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/gpu.txt"
# Build the image cache once, before the processes that share it start.
python3 - "$root/.device/omniglot" <<'PY'
import sys
from pathlib import Path
from bench.registry import DATASETS
adapter = DATASETS.get("omniglot")(DATASETS.get("omniglot").Config(), Path(sys.argv[1]))
for split in ("train", "val", "test"):
    print(split, adapter.load(split).n_classes, "classes")
PY
start=$(date +%s)

run_group() {  # $1: methods, $2: seconds
  for method in $1; do
    for shot in 1 5; do
      timeout "$2" python3 -m bench.cli run --preset omniglot-snell --methods "$method" \
        --shots "$shot" --data-root "$root/.device/omniglot" --train-episodes "$EPISODES" \
        --device cuda --out "$out" > "$OUT/run-$method-$shot.log" 2>&1 &
    done
  done
  wait
}

run_group "$METHODS" "$LIMIT"
echo "first group done after $(( $(date +%s) - start )) s" | tee "$OUT/wall.txt"
left=$(( LIMIT - ($(date +%s) - start) ))
if [ -n "$LATER" ] && [ "$left" -gt 30 ]; then
  run_group "$LATER" "$left"
fi
echo "all done after $(( $(date +%s) - start )) s" | tee -a "$OUT/wall.txt"
tail -n 3 "$OUT"/run-*.log
# Results and resumable state come back separately: the returned files have a size limit.
tar czf "$OUT/results.tgz" -C "$out" --exclude=./models --exclude=./checkpoints --exclude=./locks .
tar czf "$OUT/checkpoints.tgz" -C /tmp omniglot-snell/checkpoints
