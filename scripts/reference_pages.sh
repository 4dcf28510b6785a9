#!/usr/bin/env bash
# The report of every reference set that has a report.md, written anew beside its results as
# report.md (markdown) and report.html (self-contained); both deterministic, so rerunning it on
# unchanged results changes no byte:
#   bash scripts/reference_pages.sh
# Sets with a trm row are compared against trm; a report that sized the runs needed for a
# 1-point difference keeps doing so (--power 1).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH:-.venv/bin/bench}
for report in results/reference/*/report.md; do
    dir=$(dirname "$report")
    [ -f "$dir/results.csv" ] || continue
    compare=()
    if cut -d, -f1 "$dir/results.csv" | grep -qx trm; then
        compare=(--compare trm)
        if grep -q "runs for" "$report"; then compare+=(--power 1); fi  # it had the column
    fi
    "$BENCH" report "$dir" "${compare[@]}" --format markdown --html "$dir/report.html" \
        > "$dir/report.md.new"
    mv "$dir/report.md.new" "$report"
done
