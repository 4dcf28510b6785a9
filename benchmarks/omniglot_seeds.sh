#!/usr/bin/env bash
# Six training runs (seeds 0-5) on one test-episode set (test seed 0) for the Omniglot 5-way
# 1-shot cells of the metric zoo (10 episodic methods, the omniglot-zoo budget) and of TRM's
# normalisations (dual, row, sinkhorn; the omniglot-trm-ablation budget), fp32.
#
# Seed 0 of each cell was trained and tested on test seed 0 already (omniglot-zoo and
# omniglot-ablation-dual): its rows and files are copied, not recomputed, so only seeds 1-5 train.
# Resumable: rerun to finish. Two processes, one thread each, walk the seeds from both ends.
#   bash benchmarks/omniglot_seeds.sh [DATA_ROOT]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/omniglot}
BENCH=${BENCH:-.venv/bin/bench}
ZOO=results/reference/omniglot-zoo-seeds
ABL=results/reference/omniglot-ablation-seeds
ZOO_METHODS=trm,protonet,cosine,ctx,can,dn4,frn,matchingnet,relationnet,feat
ABL_METHODS="trm,trm(normalize=row),trm(normalize=sinkhorn)"

.venv/bin/python scripts/copy_cells.py results/reference/omniglot-zoo "$ZOO" \
    --where way=5 shot=1 seed=0 --methods "$ZOO_METHODS"
.venv/bin/python scripts/copy_cells.py results/reference/omniglot-ablation-dual "$ABL" \
    --where way=5 shot=1 seed=0 --methods "$ABL_METHODS"

reverse() { echo "$1" | tr ',' '\n' | tac | paste -sd, -; }
zoo() {  # $1: seeds, $2: methods
    nice -n 10 "$BENCH" run --preset omniglot-zoo --data-root "$DATA" --out "$ZOO" \
        --ways 5 --shots 1 --seed "$1" --test-seed 0 --methods "$2" --precision fp32 --threads 1
}
abl() {
    nice -n 10 "$BENCH" run --preset omniglot-trm-ablation --data-root "$DATA" --out "$ABL" \
        --seed "$1" --test-seed 0 --methods "$2" --precision fp32 --threads 1
}
(zoo 1,2,3,4,5 "$ZOO_METHODS"; abl 1,2,3,4,5 "$ABL_METHODS") &
sleep 60  # the first process builds the data cache
(zoo 5,4,3,2,1 "$(reverse "$ZOO_METHODS")"; abl 5,4,3,2,1 "$(reverse "$ABL_METHODS")") &
wait
for dir in "$ZOO" "$ABL"; do
    "$BENCH" report "$dir" --format markdown --compare trm > "$dir/report.md"
done
