"""Copy finished cells (results rows and their per-episode, log and config files) from one
results folder into another, so a study can reuse cells measured before instead of redoing them.

    python scripts/copy_cells.py SRC DST --where way=5 shot=1 seed=0 --methods trm,protonet

Rows already in DST are left alone; the copied rows keep their cell_id, so `bench run --out DST`
with the same settings skips them.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import results  # noqa: E402
from bench.core.config import split_methods  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--where", nargs="*", default=[], metavar="COLUMN=VALUE")
    parser.add_argument("--methods", default="", help="comma-separated method labels (exact)")
    args = parser.parse_args()
    where = dict(item.split("=", 1) for item in args.where)
    methods = set(split_methods(args.methods))
    text = results.read_text(results.results_path(args.src))
    rows = [row for row in csv.DictReader(io.StringIO(text))
            if all(row[key] == value for key, value in where.items())
            and (not methods or row["method"] in methods)]
    have = results.finished_cell_ids(args.dst)
    copied = 0
    for row in rows:
        if row["cell_id"] in have:
            continue
        cell = row["cell_id"]
        for sub, ext in (("per_episode", "npy"), ("logs", "csv"), ("configs", "json")):
            source = args.src / sub / f"{cell}.{ext}"
            if source.exists():
                (args.dst / sub).mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, args.dst / sub / source.name)
        for column, fill in results.ADDED_COLUMNS.items():  # an older schema's row
            if not row.get(column):
                row[column] = row.get(fill, "") if fill else ""
        results.append_row(args.dst, {column: row.get(column, "") for column in results.COLUMNS})
        copied += 1
    print(f"copied {copied} of {len(rows)} matching cells from {args.src} to {args.dst}")


if __name__ == "__main__":
    main()
