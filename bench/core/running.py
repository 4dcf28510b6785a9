"""Trainings in progress, for watching a long run: their logs so far.

While a cell's model trains, ``STORAGE/logs/running/<training_id>.csv`` holds its training log so
far (episode, loss, train_acc, val_acc, lr), rewritten atomically at every checkpoint, with
``<training_id>.json`` beside it (what trains: method, dataset, shape, seed, the episode cap).
Both are deleted when the training finishes (its cells' logs then go to ``logs/<cell_id>.csv``).
A training that was stopped keeps them until it resumes and finishes, so a report can say which
trainings are unfinished and how far they got. No torch here: reports read this.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.results import atomic_write_text

LOG_COLUMNS = ["episode", "loss", "train_acc", "val_acc", "lr"]


def running_dir(storage_dir: Path) -> Path:
    return Path(storage_dir) / "logs" / "running"


def write_running(storage_dir: Path, training_id: str, about: dict, log: list[dict]) -> None:
    folder = running_dir(storage_dir)
    lines = [",".join(LOG_COLUMNS)] + [",".join("" if entry[c] != entry[c] else repr(entry[c])
                                                 for c in LOG_COLUMNS) for entry in log]
    atomic_write_text(folder / f"{training_id}.csv", "\n".join(lines) + "\n")
    atomic_write_text(folder / f"{training_id}.json", json.dumps(about, sort_keys=True) + "\n")


def finish_running(storage_dir: Path, training_id: str) -> None:
    for suffix in (".csv", ".json"):
        (running_dir(storage_dir) / f"{training_id}{suffix}").unlink(missing_ok=True)


def read_running(folders) -> list[dict]:
    """[{"about": {...}, "log": DataFrame, "training_id": ...}] of every unfinished training
    under the given results folders, sorted by what trains."""
    import pandas as pd

    found = []
    for folder in folders:
        folder = Path(folder)
        folder = folder.parent if folder.is_file() else folder
        for about_path in sorted(running_dir(folder).glob("*.json")):
            log_path = about_path.with_suffix(".csv")
            try:
                about = json.loads(about_path.read_text())
                log = pd.read_csv(log_path)
            except (OSError, ValueError):
                continue  # half-written or removed meanwhile: the next report sees it
            found.append({"about": about, "log": log, "training_id": about_path.stem})
    return sorted(found, key=lambda item: item["about"].get("label", ""))


def describe(item: dict) -> str:
    """"trm mini-imagenet 5-way 5-shot seed 0: episode 700 of at most 4000, best validation
    45.1% (episode 500)"."""
    about, log = item["about"], item["log"]
    episode = int(log["episode"].max()) if len(log) else 0
    text = f"{about.get('label', item['training_id'])}: episode {episode} of at most " \
           f"{about.get('episodes', '?')}"
    validated = log.dropna(subset=["val_acc"]) if len(log) else log
    if len(validated):
        best = validated.loc[validated["val_acc"].idxmax()]
        text += f", best validation {100 * best['val_acc']:.1f}% (episode {int(best['episode'])})"
    return text
