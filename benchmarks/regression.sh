#!/usr/bin/env bash
# Accuracy-regression benchmark run by CI after the tests: glyphs, trm/protonet/cosine, 5-way
# 1- and 5-shot, 200 training episodes, 300 test episodes, seed 0, CPU (about 2-3 minutes on
# 2 cores). `bench check` exits 1 when a cell falls below results/baselines/ci-glyphs.csv by more
# than the two 95% CIs allow (rule in docs/report.md). `--update` rewrites the baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${REGRESSION_OUT:-$(mktemp -d)}
.venv/bin/bench run --preset ci-glyphs --out "$out"
.venv/bin/bench check --baseline results/baselines/ci-glyphs.csv --results "$out" "$@"
