#!/usr/bin/env bash
# Wall time of one 4-cell glyph grid run locally with 2 threads and as Ray tasks with 1 CPU each,
# REPEATS times alternately, with the load before each run (uptime). Usage (repository root):
#   bash benchmarks/ray_measure.sh [REPEATS] > results/perf/ray/runs.txt
set -euo pipefail
REPEATS=${1:-2}
BENCH=.venv/bin/bench
# The issue's check command: 4 cells, each 50 training episodes, 100 validation episodes at its
# end, 100 test episodes.
GRID=(run --methods protonet,cosine --shots 1,5 --train-episodes 50 --test-episodes 100)
export FEWSHOT_BENCH_CACHE=${FEWSHOT_BENCH_CACHE:-$(mktemp -d)}
work=$(mktemp -d)
"$BENCH" "${GRID[@]}" --train-episodes 1 --test-episodes 2 --shots 1 --methods protonet \
  --out "$work/warm" >/dev/null  # builds the glyph cache once, outside the timings
echo "commit $(git rev-parse --short=12 HEAD) host $(hostname) cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) cores $(nproc)"
for i in $(seq 1 "$REPEATS"); do
  for mode in local ray; do
    if [ "$mode" = local ]; then extra=(--threads 2); else extra=(--executor ray --cpus-per-task 1); fi
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    start=$(date +%s.%N)
    "$BENCH" "${GRID[@]}" "${extra[@]}" --out "$work/$mode$i" >"$work/$mode$i.log" 2>&1
    end=$(date +%s.%N)
    cells=$(python3 -c "import csv,sys; r=list(csv.DictReader(open('$work/$mode$i/results.csv'))); print(len(r), round(sum(float(x['train_seconds'])+float(x['eval_seconds']) for x in r),1), ' '.join(f\"{float(x['acc']):.2f}\" for x in r))")
    printf '%s run %d: wall %.1f s, load before %s, cells/compute s/accs %s\n' "$mode" "$i" "$(echo "$end - $start" | bc)" "$load" "$cells"
  done
done
rm -rf "$work"
