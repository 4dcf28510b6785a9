"""The same cell (same cell_id) in two results folders, paired on its test episodes: a cell
retrained after a fix against its earlier version, or a rerun against the original.

`bench report` keeps one row per cell_id, so it cannot put a cell beside its own earlier version;
this does, for every cell_id the two folders share:

    .venv/bin/python benchmarks/same_cell_pairs.py results/reference/mini-fair-old-rule \
        results/reference/mini-fair-fp32

One row per shared cell: both accuracies, NEW − OLD in points with its 95% CI over the test
episodes (Student t) and the paired t-test's p, the stopping and best-validated episodes of both
trainings. It refuses a pair whose test episodes differ (``episodes_hash``). One training run of
each: the ± covers the test episodes, not what another training run would do.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from bench.results import load, log_path, per_episode  # noqa: E402
from bench.stats import paired_test  # noqa: E402


def last_episode(folder: Path, cell_id: str) -> int | None:
    path = log_path(folder, cell_id)
    return int(pd.read_csv(path)["episode"].max()) if path.exists() else None


def pairs(old_dir: Path, new_dir: Path) -> list[dict]:
    old, new = load(old_dir), load(new_dir)
    shared = sorted(set(old["cell_id"]) & set(new["cell_id"]))
    rows = []
    for cell_id in shared:
        before = old[old["cell_id"] == cell_id].iloc[-1]
        after = new[new["cell_id"] == cell_id].iloc[-1]
        if before["episodes_hash"] != after["episodes_hash"]:
            raise SystemExit(f"same_cell_pairs: cell {cell_id} was tested on other episodes in "
                             f"{new_dir} than in {old_dir} (episodes_hash differs): no pairing")
        a, b = per_episode(after), per_episode(before)
        test = paired_test(a, b)
        rows.append({
            "cell": f"{after['method']} {after['dataset']} {int(after['way'])}-way "
                    f"{int(after['shot'])}-shot, trained at {int(after['train_shot'])}-shot, "
                    f"seed {int(after['seed'])}, {after['precision']}",
            "old": 100 * b.mean(), "new": 100 * a.mean(),
            "diff": 100 * test.mean_diff, "ci": 100 * test.ci95, "p": test.t_p, "n": test.n,
            "old_stop": last_episode(old_dir, cell_id), "new_stop": last_episode(new_dir, cell_id),
            "old_best": int(before["best_episode"]), "new_best": int(after["best_episode"]),
            "old_commit": before["commit"], "new_commit": after["commit"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="the folder with the earlier versions")
    parser.add_argument("new", type=Path, help="the folder with the retrained cells")
    args = parser.parse_args()
    rows = pairs(args.old, args.new)
    if not rows:
        raise SystemExit(f"same_cell_pairs: {args.old} and {args.new} share no cell_id")
    print("| cell | old | new | new − old (points) | p (paired t) | episodes | old: stopped / "
          "best | new: stopped / best | commits (old → new) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        print(f"| {r['cell']} | {r['old']:.2f} | {r['new']:.2f} | {r['diff']:+.2f} ± {r['ci']:.2f} "
              f"| {r['p']:.2g} | {r['n']} | {r['old_stop']} / {r['old_best']} | "
              f"{r['new_stop']} / {r['new_best']} | {r['old_commit']} → {r['new_commit']} |")


if __name__ == "__main__":
    main()
