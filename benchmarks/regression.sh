#!/usr/bin/env bash
# Accuracy-regression benchmark run by CI after the tests: glyphs, trm/protonet/cosine, 5-way
# 1- and 5-shot, 200 training episodes, 300 test episodes, seed 0, CPU (about 2-3 minutes on
# 2 cores). `bench check` exits 1 when a cell falls below results/baselines/ci-glyphs.csv by more
# than the two 95% CIs allow plus 3 points (rule in docs/report.md). `--update` rewrites the
# baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${REGRESSION_OUT:-$(mktemp -d)}
.venv/bin/bench run --preset ci-glyphs --out "$out"
# Same machine and threads: bit-identical numbers. --tolerance 3 absorbs what the episode CIs do not
# cover (training variance, another CPU's float rounding); a broken method drops by 15-60 points.
.venv/bin/bench check --baseline results/baselines/ci-glyphs.csv --results "$out" --tolerance 3 "$@"
