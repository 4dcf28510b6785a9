#!/usr/bin/env bash
# The HTML page of every reference set that has a report.md, written beside it as report.html
# (self-contained, deterministic: rerunning it on unchanged results changes no byte):
#   bash scripts/reference_pages.sh
# Sets with a trm row are compared against trm, as their report.md is.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH:-.venv/bin/bench}
for report in results/reference/*/report.md; do
    dir=$(dirname "$report")
    [ -f "$dir/results.csv" ] || continue
    if cut -d, -f1 "$dir/results.csv" | grep -qx trm; then compare=(--compare trm); else compare=(); fi
    "$BENCH" report "$dir" "${compare[@]}" --format markdown --html "$dir/report.html" > /dev/null
done
