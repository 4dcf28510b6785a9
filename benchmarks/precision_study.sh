#!/usr/bin/env bash
# What bf16 training does to accuracy (a cost option of the fair-answer issue): the mini-fair
# recipe with fp32 training, for protonet(temperature=64) and cosine at both shots, whose fp32
# cells take under an hour and a half each on a 2-core CPU, and trm at 1-shot (about 2.3 h; its
# 5-shot fp32 steps take 7.6 s on an AVX2 EPYC: 8 h to the 4000 cap). Each cell pairs with
# mini-fair's bf16 cell of the same method, shot and seed on the same 2,000 test episodes (test
# seed 0). Pre-training runs in the
# training's precision too (precision is part of the backbone's identity), so the comparison is
# of the whole recipe in fp32 against the whole recipe in bf16; seed 0's fp32 backbones are
# mini-imagenet-cpu's (copied into mini-fair with the bf16 ones), seeds 1 and 2 pre-train here
# (about 75 min per Conv-4 backbone on a 2-core AVX2 EPYC: 0.95 s a batch of 64). Order: seed
# 0 at 1-shot first (protonet, cosine, trm: no pre-training, the first 1-shot cells trained
# under the budget rule, and the pairs of the fair queue's next miniImageNet cells, trm's among
# them), then protonet and cosine at 5-shot for seeds 1 and 2, then seeds 1 and 2 at 1-shot.
# (Seed 0's 5-shot pair comes before all: protonet retrains under the fixed budget rule.)
# The set is results/reference/mini-fair-fp32 and never mixes with mini-fair's table (another
# training id).
#
# This is the queue for sessions on CPUs without native bf16 (AVX2 only), where the fair-answer
# queue (benchmarks/fair_answer.sh) cannot run; on a bf16 CPU run that one instead. Resumable:
# rerunning continues where it stopped; before a session ends, commit the unfinished trainings'
# checkpoints (`.venv/bin/python scripts/save_checkpoints.py`) so a fresh checkout resumes them.
#   nohup bash benchmarks/precision_study.sh > precision.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH:-.venv/bin/bench}
OUT=${OUT:-results/reference/mini-fair-fp32}
MINI=${MINI:-results/reference/mini-fair}  # whose pre-trained backbones (seed 0) are copied
mkdir -p "$OUT/pretrained"
if ! ls "$MINI"/pretrained/*.pt > /dev/null 2>&1; then
    echo "precision_study.sh: no pre-trained backbones in $MINI/pretrained; seed 0 pre-trains" \
         "its own (over an hour per backbone)" >&2
fi
cp -n "$MINI"/pretrained/*.pt "$OUT/pretrained/" 2>/dev/null || true  # cp -n: 1 when it skips
run() { nice -n 10 "$BENCH" run --preset mini-fair --data-root ../shared/data/miniimagenet \
    --out "$OUT" --precision fp32 "$@"; }
pair="protonet(temperature=64),cosine"
# Seed 0's 5-shot pair (cosine finished; protonet retrains: the budget rule stopped it at
# episode 2000, where the learning rate halves, before the rule was fixed on 2026-12-08; the
# old cell is in results/reference/mini-fair-old-rule)
run --shots 5 --seed 0 --methods "$pair"
# Seed 0 at 1-shot first: its backbones exist, and its cells are the first 1-shot ones trained
# under the budget rule (trm's 1-shot fp32 training is about 2.3 h here, 1.8 s a step; its
# 5-shot one 8 h, 7.6 s a step, so trm trains at 1-shot only)
run --shots 1 --seed 0 --methods "$pair,trm"
# then the other seeds: 5-shot first, the first measure of how much a natural-image cell moves
# between training runs (the answer page's single-run rows need it)
for shot in 5 1; do
    for seed in 1 2; do
        run --shots "$shot" --seed "$seed" --methods "$pair"
    done
done
for seed in 1 2; do
    run --shots 1 --seed "$seed" --methods trm
done
"$BENCH" report "$OUT" --format markdown > "$OUT/report.md.tmp"
mv "$OUT/report.md.tmp" "$OUT/report.md"
