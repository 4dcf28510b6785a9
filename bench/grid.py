"""Runs a grid of cells: train, evaluate, and write each finished cell's results at once.

A finished cell (its cell_id has a row in DIR/results.csv) is skipped unless ``force``; an
interrupted one resumes from its checkpoint. A cell whose loss turns NaN/inf is recorded in
DIR/failures/ and the other cells go on.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from bench import checkpoint, results
from bench.config import Cell
from bench.data import DatasetAdapter
from bench.env import git_state, machine
from bench.episodes import EpisodeSampler, check_episode_shape, fixed_episodes
from bench.registry import DATASETS
from bench.runner import NumericalFault, Progress, TrainState, build_model, evaluate, \
    make_optimizer, train
from bench.stats import mean_ci


class Interrupted(Exception):
    """Training stopped on a signal after saving a checkpoint."""


@dataclass
class GridOutcome:
    rows: list[dict] = field(default_factory=list)
    skipped: list[Cell] = field(default_factory=list)
    failed: list[tuple[Cell, str]] = field(default_factory=list)


@dataclass
class RunOptions:
    out_dir: Path
    data_root: Path | None = None
    cache_dir: Path | None = None
    download: bool = False
    device: str = "cpu"
    force: bool = False
    prefetch: int = 0  # training episodes sampled ahead in a worker process (0: inline)
    ci_method: str = "normal"


def load_adapter(cell: Cell, options: RunOptions) -> DatasetAdapter:
    cls = DATASETS.get(cell.dataset)
    return cls(cell.dataset_config(), options.data_root, options.cache_dir, options.download)


def run_grid(cells: list[Cell], options: RunOptions, progress_for=None,
             should_stop=lambda: False) -> GridOutcome:
    """Run every cell; ``progress_for(cell)`` gives each cell's Progress."""
    outcome, adapters, trained_now = GridOutcome(), {}, set()
    finished = results.finished_cell_ids(options.out_dir)
    for cell in cells:
        if cell.cell_id in finished and not options.force:
            outcome.skipped.append(cell)
            continue
        key = (cell.dataset, cell.dataset_params)
        if key not in adapters:
            adapters[key] = load_adapter(cell, options)
        progress = progress_for(cell) if progress_for else Progress()
        retrain = options.force and cell.training_id not in trained_now
        try:
            outcome.rows.append(run_cell(cell, adapters[key], options, progress, should_stop,
                                         retrain=retrain))
        except NumericalFault as fault:
            message, *log = fault.args
            outcome.failed.append((cell, record_failure(options.out_dir, cell, message,
                                                        log[0] if log else [])))
        trained_now.add(cell.training_id)
    return outcome


def check_cell(cell: Cell, adapter: DatasetAdapter) -> None:
    """Bad shapes fail before any training, with a one-line error."""
    check_episode_shape(adapter.load("test"), cell.way, cell.shot, cell.query)
    check_episode_shape(adapter.load("train"), cell.train_way, cell.train_shot, cell.train.query)


def run_cell(cell: Cell, adapter: DatasetAdapter, options: RunOptions, progress: Progress,
             should_stop=lambda: False, retrain: bool = False) -> dict:
    """Train (or load the model trained for an earlier cell), evaluate, write the results."""
    device = torch.device(options.device)
    check_cell(cell, adapter)
    test_set = adapter.load("test")
    test_episodes = fixed_episodes(test_set, cell.way, cell.shot, cell.query,
                                   cell.test_episodes, cell.seed)
    model, trained = trained_model(cell, adapter, options, progress, should_stop, retrain)
    start = time.perf_counter()
    accuracies = evaluate(model, test_set, test_episodes, device, progress=progress)
    eval_seconds = time.perf_counter() - start
    row = make_row(cell, accuracies, test_episodes.hash, trained, eval_seconds, options)
    write_cell(options.out_dir, cell, row, accuracies, trained["log"], options.force)
    return row


def trained_model(cell: Cell, adapter: DatasetAdapter, options: RunOptions, progress: Progress,
                  should_stop, retrain: bool):
    """(model with its best-validated weights, training record); trains only when needed.

    A finished training is stored in DIR/models/<training_id>.pt, so cells that differ only in
    the test way, query or episode count (and reruns) reuse it.
    """
    device = torch.device(options.device)
    torch.manual_seed(cell.seed)
    model = build_model(cell, adapter.channels).to(device)
    stored = checkpoint.model_path(options.out_dir, cell)
    with results.locked(options.out_dir, f"locks/{cell.training_id}.lock"):
        if stored.exists() and not retrain:
            return model, checkpoint.load_model(stored, cell, model)
        trained = train_cell(cell, model, adapter, options, progress, should_stop, retrain)
        checkpoint.save_model(stored, cell, model, trained)
    return model, trained


def train_cell(cell: Cell, model, adapter: DatasetAdapter, options: RunOptions,
               progress: Progress, should_stop, retrain: bool) -> dict:
    device = torch.device(options.device)
    train_set = adapter.load("train")
    optimizer, scheduler = make_optimizer(model, cell)
    sampler = EpisodeSampler(train_set, cell.train_way, cell.train_shot, cell.train.query,
                             cell.seed)
    path = checkpoint.checkpoint_path(options.out_dir, cell)
    state, seconds_before = TrainState(), 0.0
    if path.exists() and not retrain:
        state, seconds_before = checkpoint.load(path, cell, model, optimizer, scheduler, sampler)
    start = time.perf_counter()

    def save_checkpoint():
        checkpoint.save(path, cell, model, optimizer, scheduler, sampler, state,
                        seconds_before + time.perf_counter() - start)

    try:
        train(model, optimizer, scheduler, sampler, train_set, state, cell, device,
              validate=validation(model, adapter, cell, device),
              augment=adapter.train_augmentation(), progress=progress,
              checkpoint=save_checkpoint, should_stop=should_stop, prefetch=options.prefetch)
    except NumericalFault as fault:
        raise NumericalFault(f"{fault} at training episode {state.episode + 1}",
                             state.log[-20:]) from None
    if state.episode < cell.train.episodes:
        raise Interrupted(cell.describe())
    if state.best_weights is not None:
        model.load_state_dict(state.best_weights)
    path.unlink(missing_ok=True)
    return {"best_episode": state.best_episode or state.episode, "log": state.log,
            "train_seconds": seconds_before + time.perf_counter() - start}


def validation(model, adapter: DatasetAdapter, cell: Cell, device):
    """Mean accuracy on fixed validation episodes of the training shape (None: no validation)."""
    if not cell.train.val_every or not cell.train.episodes:
        return None
    val_set = adapter.load("val")
    if val_set.n_classes < 2:
        return None
    way = min(cell.train_way, val_set.n_classes)
    shot = cell.train_shot
    query = min(cell.train.query, int(val_set.images_per_class().min()) - shot)
    if query < 1:
        return None
    episodes = fixed_episodes(val_set, way, shot, query, cell.train.val_episodes, cell.seed)
    return lambda: float(evaluate(model, val_set, episodes, device).mean())


def make_row(cell: Cell, accuracies: np.ndarray, episodes_hash: str, trained: dict,
             eval_seconds: float, options: RunOptions) -> dict:
    acc, ci95 = mean_ci(accuracies, options.ci_method)
    commit, dirty = git_state()
    resolved = cell.resolved()
    return {
        "method": cell.method.label, "dataset": cell.dataset,
        "split": split_label(cell),
        "backbone": resolved["method_params"].get("backbone", ""),
        "way": cell.way, "shot": cell.shot, "query": cell.query,
        "test_episodes": cell.test_episodes, "acc": 100 * acc, "ci95": 100 * ci95,
        "ci_method": options.ci_method, "seed": cell.seed,
        "train_episodes": cell.train.episodes, "train_way": cell.train_way,
        "train_shot": cell.train_shot, "train_query": cell.train.query,
        "precision": cell.train.precision,
        "best_episode": trained["best_episode"],
        "train_seconds": round(trained["train_seconds"], 2), "eval_seconds": round(eval_seconds, 2),
        "episodes_hash": episodes_hash, "commit": commit, "dirty": dirty,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **{key: value for key, value in machine(options.device).items() if key != "cores"},
        "cell_id": cell.cell_id, "schema_version": results.SCHEMA_VERSION,
        "config": resolved,
    }


def split_label(cell: Cell) -> str:
    """The dataset's split option (or "standard"), plus any other option set off its default."""
    params = asdict(cell.dataset_config())
    defaults = asdict(DATASETS.get(cell.dataset).Config())
    label = str(params.pop("split", "standard"))
    changed = [f"{key}={value}" for key, value in params.items() if value != defaults.get(key)]
    return label + (f" ({','.join(changed)})" if changed else "")


def write_cell(out_dir: Path, cell: Cell, row: dict, accuracies, log: list[dict],
               replace: bool) -> None:
    """Per-episode file, log and config first, the results row last (it marks the cell done)."""
    import pandas as pd

    results.save_per_episode(out_dir, cell.cell_id, accuracies)
    results.atomic_write_text(results.log_path(out_dir, cell.cell_id),
                              pd.DataFrame(log, columns=["episode", "loss", "train_acc",
                                                         "val_acc", "lr"]).to_csv(index=False))
    results.atomic_write_text(Path(out_dir) / "configs" / f"{cell.cell_id}.json",
                              json.dumps(row["config"], indent=2, sort_keys=True) + "\n")
    results.append_row(out_dir, row, replace=replace)


def record_failure(out_dir: Path, cell: Cell, message: str, log: list[dict]) -> str:
    """Writes DIR/failures/<cell_id>.json (configuration, error, last log entries)."""
    path = Path(out_dir) / "failures" / f"{cell.cell_id}.json"
    diagnostic = {"cell": cell.resolved(), "error": message, "last_log": log,
                  "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    results.atomic_write_text(path, json.dumps(diagnostic, indent=2, default=str) + "\n")
    return f"{message} (diagnostic: {path})"
