#!/usr/bin/env bash
# The fair-answer queue (miniImageNet and CUB): every method trained at its test shot under the
# budget rule of the mini-fair / cub-fair presets, three training runs on one test-episode set.
# Ordered so that the table grows in useful steps: the per-shot models of trm, protonet and
# cosine at seed 0 first, on both datasets (5-shot, the cells the old protocol got wrong, on
# miniImageNet then CUB; then 1-shot), then seeds 1 and 2 in the same order. Each miniImageNet
# model is also tested on CUB (mini-to-cub-fair) as soon as it is trained. Every `bench run`
# resumes where it stopped (checkpoints every 100 episodes), so rerunning this script continues
# the queue; commit results/reference/*-fair as cells land, and before a session ends commit the
# unfinished trainings' checkpoints (`.venv/bin/python scripts/save_checkpoints.py`): a session
# may start from a fresh checkout, and a TRM 5-shot training outlasts one session.
# Its first run after 2026-12-08 retrains miniImageNet's protonet 5-shot cell of seed 0 (and
# tests it on CUB): the budget rule had stopped it at episode 2000, before its learning rate
# halved; the rule is fixed and the old cell is in results/reference/mini-fair-old-rule.
#
# bf16: these sets train in bfloat16 autocast on CPUs with native bf16 (AMX or AVX512-BF16),
# as mini-cpu's protonet/cosine/trm cells did (their pre-trained backbones are reused). On an
# AVX2-only CPU bf16 is emulated and very slow: run the queue where `lscpu` shows avx512_bf16 or
# amx_bf16, or start a separate fp32 set (another --out), never mix the two in one table. The
# script refuses to start on a CPU without native bf16 (FAIR_ANYWAY=1 overrides).
#   nohup bash benchmarks/fair_answer.sh > fair.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH:-.venv/bin/bench}
MINI=${MINI:-results/reference/mini-fair}  # override all three to run the queue from another
CUB=${CUB:-results/reference/cub-fair}    # checkout (e.g. a worktree, while this one is edited)
M2C=${M2C:-results/reference/mini-to-cub-fair}
if ! grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo 2>/dev/null && [ -z "${FAIR_ANYWAY:-}" ]; then
    echo "fair_answer.sh: this CPU has no native bf16 (neither avx512_bf16 nor amx_bf16 in" \
         "/proc/cpuinfo), and the queue trains in bf16, which is emulated here (hundreds of times" \
         "slower): run it on a CPU that has one, or set FAIR_ANYWAY=1 (stored models are still" \
         "evaluated in fp32 by a plain \`bench run\` of their cells; the fp32 queue for such" \
         "CPUs is benchmarks/precision_study.sh)" >&2
    exit 2
fi
for pair in "mini-imagenet-cpu:$MINI" "cub-cpu:$CUB"; do  # seed 0's pre-trained backbones
    mkdir -p "${pair#*:}/pretrained"
    cp -n "${REF:-results/reference}/${pair%%:*}"/pretrained/*.pt "${pair#*:}/pretrained/" 2>/dev/null || true
done
mini() { nice -n 10 "$BENCH" run --preset mini-fair --data-root ../shared/data/miniimagenet \
    --out "$MINI" --precision bf16 "$@"; }
# miniImageNet's models tested on CUB's test episodes (Chen et al.'s cross-domain scenario):
# evaluation only, fp32, never trains (a missing model is a one-line error).
m2c() { nice -n 10 "$BENCH" run --preset mini-fair --data-root ../shared/data/miniimagenet \
    --test-dataset cub --test-data-root ../shared/data/cub --models-from "$MINI" \
    --out "$M2C" --precision bf16 "$@"; }
cub() { nice -n 10 "$BENCH" run --preset cub-fair --data-root ../shared/data/cub \
    --out "$CUB" --precision bf16 "$@"; }
for seed in 0 1 2; do
    for shot in 5 1; do
        mini --shots "$shot" --seed "$seed" --methods "protonet(temperature=64),cosine,trm"
        m2c --shots "$shot" --seed "$seed" --methods "protonet(temperature=64),cosine,trm"
        cub --shots "$shot" --seed "$seed" --methods "protonet(temperature=64),cosine,trm"
    done
done
# Then TRM's relatives, one training run each (seed 0) under the same rule: ctx and dn4 first
# (TRM's closest relatives: attention over positions, local descriptors), then the rest of the
# methods the CPU sets hold.
for relatives in "ctx,dn4" "can,frn,baseline,baselinepp"; do
    for shot in 5 1; do
        mini --shots "$shot" --seed 0 --methods "$relatives"
        m2c --shots "$shot" --seed 0 --methods "$relatives"
        cub --shots "$shot" --seed 0 --methods "$relatives"
    done
done
for dir in "$MINI" "$M2C" "$CUB"; do
    "$BENCH" report "$dir" --format markdown --compare trm > "$dir/report.md"
done
