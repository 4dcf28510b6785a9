"""Writes the checked-in example results under tests/data/example_results/ (deterministic).

Synthetic but shaped like real runs: methods trm, protonet and cosine on dataset ``glyphs``, 5-way
1- and 5-shot, seeds 0 and 1, 200 test episodes of 15 queries per class, so every per-episode
accuracy is a multiple of 1/75. Methods of the same (shot, seed) share the episodes (one
``episodes_hash``) and a per-episode difficulty, so paired tests have something to remove. trm leads
clearly at 1-shot and barely at 5-shot. ``mismatched/`` holds one row of ``trm(attn_dim=128)``
measured on other episodes (10 queries), to test that pairing is refused.

Run from the repository root: ``.venv/bin/python tests/data/make_example_results.py``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from bench import stats
from bench.results import COLUMNS, SCHEMA_VERSION, append_row, log_path, save_per_episode

OUT = Path(__file__).resolve().parent / "example_results"
WAY, EPISODES, TRAIN_EPISODES = 5, 200, 2000
# Mean per-episode logit of each method by shot: trm's 1-shot lead is large, its 5-shot lead small.
SKILL = {1: {"trm": 0.12, "protonet": -0.02, "cosine": -0.06},
         5: {"trm": 0.86, "protonet": 0.84, "cosine": 0.78}}


def short_hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def episode_accuracies(rng, difficulty, skill: float, queries: int) -> np.ndarray:
    """Correct answers out of WAY * queries, per episode, from a shared difficulty plus noise."""
    logits = skill + difficulty + rng.normal(0.0, 0.15, size=difficulty.size)
    return rng.binomial(WAY * queries, 1.0 / (1.0 + np.exp(-logits))) / (WAY * queries)


def training_log(rng, shot: int, skill: float) -> str:
    """A CSV training log: every 50 episodes, validation every 250 (NaN elsewhere)."""
    lines = ["episode,loss,train_acc,val_acc,lr"]
    for episode in range(50, TRAIN_EPISODES + 1, 50):
        progress = episode / TRAIN_EPISODES
        loss = 1.6 * np.exp(-3.0 * progress) + 0.5 - 0.1 * skill + rng.normal(0, 0.03)
        train_acc = min(0.99, 0.3 + 0.5 * (1 - np.exp(-4 * progress)) + 0.1 * skill)
        val = (0.25 + 0.3 * (1 - np.exp(-4 * progress)) + 0.1 * skill + 0.03 * (shot > 1)
               + rng.normal(0, 0.01)) if episode % 250 == 0 else float("nan")
        lr = 1e-3 * (0.5 if episode > TRAIN_EPISODES // 2 else 1.0)
        lines.append(f"{episode},{loss:.4f},{train_acc:.4f},{val:.4f},{lr:g}")
    return "\n".join(lines) + "\n"


def row(method, shot, seed, query, episodes_hash, accuracies) -> dict:
    key = {"method": method, "dataset": "glyphs", "split": "test", "backbone": "conv4",
           "way": WAY, "shot": shot, "query": query, "test_episodes": accuracies.size, "seed": seed}
    acc, ci95 = stats.mean_ci(accuracies * 100.0, "normal")
    values = {**key, "acc": acc, "ci95": ci95, "ci_method": "normal",
              "train_dataset": "glyphs", "train_episodes": TRAIN_EPISODES, "train_way": WAY,
              "train_shot": shot,
              "train_query": query, "best_episode": TRAIN_EPISODES, "train_seconds": 60.0,
              "eval_seconds": 5.0, "episodes_hash": episodes_hash, "commit": "example",
              "dirty": False, "timestamp": "2025-01-01T00:00:00+00:00", "host": "example",
              "cpu": "example", "threads": 2, "torch": "2.14.1", "device": "cpu",
              "cell_id": short_hash(key), "schema_version": SCHEMA_VERSION,
              "config": key}
    return {column: values[column] for column in COLUMNS}


def write_cell(out_dir: Path, values: dict, accuracies, log: str | None = None) -> None:
    append_row(out_dir, values)
    save_per_episode(out_dir, values["cell_id"], accuracies)
    if log is not None:
        path = log_path(out_dir, values["cell_id"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(log)


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    rng = np.random.default_rng(20250101)
    for shot in (1, 5):
        for seed in (0, 1):
            episodes_hash = short_hash("glyphs", "test", WAY, shot, 15, EPISODES, seed)
            difficulty = rng.normal(0.0, 0.5, size=EPISODES)
            for method, skill in SKILL[shot].items():
                accuracies = episode_accuracies(rng, difficulty, skill, 15)
                write_cell(OUT, row(method, shot, seed, 15, episodes_hash, accuracies),
                           accuracies, training_log(rng, shot, skill))
    other_hash = short_hash("glyphs", "test", WAY, 5, 10, EPISODES, 0)
    accuracies = episode_accuracies(rng, rng.normal(0.0, 0.5, size=EPISODES), 0.9, 10)
    write_cell(OUT / "mismatched", row("trm(attn_dim=128)", 5, 0, 10, other_hash, accuracies),
               accuracies)
    for lock in OUT.rglob(".lock"):
        lock.unlink()


if __name__ == "__main__":
    main()
