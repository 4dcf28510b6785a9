"""benchmarks/same_cell_pairs.py: a cell beside its own earlier version (same cell_id in two
folders), paired on the test episodes, which `bench report` cannot do (one row per cell_id)."""

import json

import numpy as np
import pytest
from helpers import load_script

from bench import results, stats


def write(out, accuracies, best, episodes_hash="h" * 16, cell_id="cell-a"):
    results.save_per_episode(out, cell_id, accuracies)
    acc, ci95 = stats.mean_ci(accuracies)
    row = {column: "" for column in results.COLUMNS}
    row.update(method="protonet(temperature=64)", dataset="synthetic", split="test",
               backbone="conv4", way=5, shot=5, query=15, test_episodes=accuracies.size,
               acc=100 * acc, ci95=100 * ci95, ci_method="normal", seed=0, test_seed=0,
               train_shot=5, train_dataset="synthetic", precision="fp32", best_episode=best,
               commit=f"c{best}", episodes_hash=episodes_hash, cell_id=cell_id,
               schema_version=results.SCHEMA_VERSION,
               config=json.dumps({"method": "protonet", "seed": 0, "way": 5, "shot": 5}))
    results.append_row(out, row)


def test_pairs_a_retrained_cell_with_its_earlier_version(tmp_path):
    pairs = load_script("benchmarks/same_cell_pairs.py")
    rng = np.random.default_rng(0)
    old = rng.uniform(0.4, 0.8, 500)
    new = np.clip(old + rng.normal(0.02, 0.05, 500), 0, 1)
    write(tmp_path / "old", old, best=500)
    write(tmp_path / "new", new, best=3250)
    write(tmp_path / "new", new, best=3250, cell_id="only-new")  # not in both: no row
    [row] = pairs.pairs(tmp_path / "old", tmp_path / "new")
    expected = stats.paired_test(new, old)
    assert row["diff"] == pytest.approx(100 * expected.mean_diff)
    assert row["ci"] == pytest.approx(100 * expected.ci95) and row["p"] == expected.t_p
    assert (row["old_best"], row["new_best"], row["n"]) == (500, 3250, 500)
    assert row["old_stop"] is None  # no training log in these folders


def test_refuses_cells_tested_on_other_episodes(tmp_path):
    pairs = load_script("benchmarks/same_cell_pairs.py")
    write(tmp_path / "old", np.full(10, 0.5), best=1)
    write(tmp_path / "new", np.full(10, 0.6), best=2, episodes_hash="x" * 16)
    with pytest.raises(SystemExit, match="episodes_hash differs"):
        pairs.pairs(tmp_path / "old", tmp_path / "new")
