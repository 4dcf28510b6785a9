#!/usr/bin/env bash
# The miniImageNet CPU pilot of issue 14: every arm gets the same CPU time (one thread, niced:
# other work shares the machine) and the same 500 validation episodes; two arms run at a time.
# Results: results/reference/mini-imagenet-cpu/pilot.csv, pilot/<arm>.npy, table in PILOT.md.
# Usage: bash benchmarks/mini_pilot.sh [CPU_SECONDS]   (default 220 per arm; FEWSHOT_BENCH_CACHE as for bench)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_ARM=${1:-220}
OUT=results/reference/mini-imagenet-cpu
arm() {  # NAME METHOD WAY QUERY LR AUGMENT NORMALIZE (an arm already in pilot/ is skipped)
  [ -f "$OUT/pilot/$1.npy" ] && return 0
  nice -n 10 .venv/bin/python benchmarks/mini_pilot.py --arm "$1" --method "$2" \
    --train-way "$3" --train-query "$4" --lr "$5" --augment "$6" --normalize "$7" \
    --cpu-seconds "$SECONDS_PER_ARM" --threads 1 --out "$OUT" \
    --data-root ../shared/data/miniimagenet
}
(
  arm P-T64 'protonet(temperature=64)' 5 15 1e-3 on off
  arm P-T1 protonet 5 15 1e-3 on off
  arm P-T64-noaug 'protonet(temperature=64)' 5 15 1e-3 off off
  arm P-T64-norm 'protonet(temperature=64)' 5 15 1e-3 on on
  arm C-5w cosine 5 15 1e-3 on off
) &
(
  arm P-T64-20w 'protonet(temperature=64)' 20 15 1e-3 on off
  arm P-T64-30w 'protonet(temperature=64)' 30 15 1e-3 on off
  arm P-T64-lr3e-3 'protonet(temperature=64)' 5 15 3e-3 on off
  arm C-20w cosine 20 15 1e-3 on off
  arm C-5w-noaug cosine 5 15 1e-3 off off
) &
wait
