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
from bench.errors import BenchError
from bench.interrupt import STOP, Stopped
from bench.pretrain import pretrain_into
from bench.registry import DATASETS
from bench.running import finish_running, write_running
from bench.runner import NumericalFault, Progress, TrainState, build_model, data_shape, \
    evaluate, make_optimizer, plateaued, train
from bench.stats import mean_ci


class Interrupted(Stopped):
    """Training stopped on a signal after saving a checkpoint."""


@dataclass
class GridOutcome:
    rows: list[dict] = field(default_factory=list)
    skipped: list[Cell] = field(default_factory=list)
    failed: list[tuple[Cell, str]] = field(default_factory=list)
    finished_elsewhere: list[Cell] = field(default_factory=list)  # by a concurrent run


@dataclass
class CellResult:
    """What a finished cell sends back to the process that writes results: its row (whose
    ``config`` is the resolved configuration), per-episode accuracies and training log; or the
    numerical failure of its training; or neither (a concurrent run finished it meanwhile)."""

    cell: Cell
    row: dict | None = None
    accuracies: np.ndarray | None = None
    log: list[dict] = field(default_factory=list)
    failure: str | None = None
    failure_log: list[dict] = field(default_factory=list)

    @property
    def finished_elsewhere(self) -> bool:
        return self.row is None and self.failure is None


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
    test_data_root: Path | None = None  # root of --test-dataset (cross-domain cells)
    models_from: Path | None = None  # DIR whose models/ cross-domain cells read (default storage)
    storage: Path | None = None  # models/, checkpoints/, locks/ (default out_dir; for workers)
    # (commit, dirty) of the checkout when the run started, written into every row (workers
    # too): a run of hours executes the code it imported then, whatever HEAD is when it ends
    code_state: tuple[str, bool] | None = None
    tensorboard: Path | None = None  # --tensorboard: each finished cell's log as event files

    @property
    def storage_dir(self) -> Path:
        return self.storage or self.out_dir


def load_adapter(cell: Cell, options: RunOptions) -> DatasetAdapter:
    cls = DATASETS.get(cell.dataset)
    return cls(cell.dataset_config(), options.data_root, options.cache_dir, options.download)


def adapter_for(cell: Cell, options: RunOptions, adapters: dict) -> DatasetAdapter:
    """The cell's dataset adapter, loaded once per process (``adapters`` is the cache)."""
    key = (cell.dataset, cell.dataset_params)
    if key not in adapters:
        adapters[key] = load_adapter(cell, options)
    return adapters[key]


def run_grid(cells: list[Cell], options: RunOptions, progress_for=None,
             should_stop=lambda: False, executor=None) -> GridOutcome:
    """Run every cell; ``progress_for(cell)`` gives each cell's Progress.

    The cells become jobs, one per training (bench.jobs); ``executor`` (bench.ray_executor)
    runs them elsewhere, else they run here one after the other. Either way each finished cell
    comes back as a CellResult that this process writes (``record``) the moment it arrives."""
    from bench.jobs import plan_jobs, run_job

    outcome, adapters = GridOutcome(), {}
    finished = results.finished_rows(options.out_dir)
    if not options.force:
        check_same_data([cell for cell in cells if cell.cell_id in finished
                         and not cell.test_dataset], finished,
                        lambda cell: adapter_for(cell, options, adapters), options.out_dir)
    jobs, outcome.skipped = plan_jobs(cells, set(finished), options.force)
    # Every cell's episode shape before any training or pre-training starts, on either executor
    # (a Ray task would report it only after the shared preparations had run).
    for job in jobs:
        for cell in job.cells if job.trains else ():
            with STOP.phase(f"checking {cell.describe()}"):
                try:
                    adapter = adapter_for(cell, options, adapters)
                    adapter.load("train"), adapter.load("test")
                except BenchError:
                    if executor is None:
                        raise
                    continue  # data only the workers reach: their tasks check it
                check_cell(cell, adapter)
    if executor is not None:
        adapters.clear()  # the driver keeps no images while the workers train
        executor.run(jobs, options, lambda result: record(result, options, outcome))
        return outcome

    def is_finished(cell: Cell) -> bool:  # by a concurrent run on the same --out
        return not options.force and cell.cell_id in results.finished_cell_ids(options.out_dir)

    for job in jobs:
        for result in run_job(job, options, adapters, progress_for, should_stop, is_finished):
            record(result, options, outcome)
    return outcome


def check_same_data(cells: list[Cell], finished: dict[str, dict], adapter, out_dir: Path) -> None:
    """Finished cells are reused only if measured on the same test data and trained on the same
    training data: their stored episodes_hash (which hashes the test split's content) and
    train_data (the training split's fingerprint; rows written before schema 3 have none) must
    be what the data now gives."""
    for cell in cells:
        row = finished[cell.cell_id]
        with STOP.phase(f"checking the finished {cell.describe()}"):
            test_set = adapter(cell).load("test")
            now = fixed_episodes(test_set, cell.way, cell.shot, cell.query, cell.test_episodes,
                                 cell.episode_seed).hash
            trained_on = row.get("train_data")
            train_now = adapter(cell).load("train").fingerprint() if trained_on else ""
        stored = row.get("episodes_hash")
        if stored and stored != now:
            raise BenchError(f"{results.results_path(out_dir)} holds {cell.describe()} measured "
                             f"on other files of {cell.dataset} than these (episodes_hash "
                             f"{stored}, now {now}); pass another --out, or --force to redo it")
        if trained_on and trained_on != train_now:
            raise BenchError(f"{results.results_path(out_dir)} holds {cell.describe()} trained "
                             f"on other training files of {cell.dataset} than these (train_data "
                             f"{trained_on}, now {train_now}); pass another --out, or --force to "
                             "redo it")


def check_cell(cell: Cell, adapter: DatasetAdapter) -> None:
    """Bad shapes fail before any training, with a one-line error."""
    check_episode_shape(adapter.load("test"), cell.way, cell.shot, cell.query)
    check_episode_shape(adapter.load("train"), cell.train_way, cell.train_shot, cell.train.query,
                        options=("--train-way", "--train-shot", "--train-query"))


def evaluate_cell(cell: Cell, adapter: DatasetAdapter, options: RunOptions, progress: Progress,
                  should_stop=lambda: False, retrain: bool = False,
                  is_finished=lambda cell: False) -> CellResult:
    """Train (or load the model trained for an earlier cell), evaluate; writes nothing but the
    model and checkpoints under the storage directory (the caller writes the results)."""
    device = torch.device(options.device)
    with STOP.phase(f"preparing {cell.describe()}"):
        check_cell(cell, adapter)
        test_set = adapter.load("test")
        test_episodes = fixed_episodes(test_set, cell.way, cell.shot, cell.query,
                                       cell.test_episodes, cell.episode_seed)
    model, trained = trained_model(cell, adapter, options, progress, should_stop, retrain)
    if is_finished(cell):
        return CellResult(cell)  # finished by a concurrent run meanwhile
    start = time.perf_counter()
    with STOP.phase(f"evaluating {cell.describe()}",
                    f"its trained model is kept in {options.storage_dir}/models"):
        accuracies = evaluate(model, test_set, test_episodes, device, progress=progress)
    eval_seconds = time.perf_counter() - start
    row = make_row(cell, accuracies, test_episodes.hash, trained, eval_seconds, options,
                   adapter.split_deviation())
    return CellResult(cell, row, accuracies, trained["log"])


def trained_model(cell: Cell, adapter: DatasetAdapter, options: RunOptions, progress: Progress,
                  should_stop, retrain: bool):
    """(model with its best-validated weights, training record); trains only when needed.

    A finished training is stored in STORAGE/models/<training_id>.pt, so cells that differ only in
    the test way, query or episode count (and reruns) reuse it.
    """
    device = torch.device(options.device)
    torch.manual_seed(cell.seed)
    train_set = adapter.load("train")
    model = build_model(cell, adapter.channels, **data_shape(train_set)).to(device)
    stored = checkpoint.model_path(options.storage_dir, cell)
    train_data = train_set.fingerprint()
    with results.locked(options.storage_dir, f"locks/{cell.training_id}.lock"):
        if stored.exists() and not retrain:
            return model, checkpoint.load_model(stored, cell, model, train_data)
        # --force retrains a shared pre-training once, in its preparation (bench.jobs), which
        # runs before this, in another process on Ray: here it is only loaded (or trained if
        # absent).
        pretrained = pretrain_into(model, cell, train_set, options.storage_dir, device,
                                   adapter.train_augmentation(), should_stop, False, progress)
        trained = {**train_cell(cell, model, adapter, options, progress, should_stop, retrain),
                   **(pretrained or {}), "data_shape": data_shape(train_set),
                   "train_data": train_data}
        trained["train_seconds"] += trained.get("pretrain_seconds", 0.0)  # shared, counted whole
        with STOP.phase(f"saving the model of {cell.describe()}", defer=True):
            checkpoint.save_model(stored, cell, model, trained)
    return model, trained


def train_cell(cell: Cell, model, adapter: DatasetAdapter, options: RunOptions,
               progress: Progress, should_stop, retrain: bool) -> dict:
    device = torch.device(options.device)
    train_set = adapter.load("train")
    optimizer, scheduler = make_optimizer(model, cell)
    sampler = EpisodeSampler(train_set, cell.train_way, cell.train_shot, cell.train.query,
                             cell.seed)
    path = checkpoint.checkpoint_path(options.storage_dir, cell)
    state, seconds_before = TrainState(), 0.0
    if path.exists() and not retrain:
        state, seconds_before = checkpoint.load(path, cell, model, optimizer, scheduler, sampler)
    start = time.perf_counter()

    about = {"label": cell.describe(), "method": cell.method.label, "dataset": cell.dataset,
             "way": cell.train_way, "shot": cell.train_shot, "seed": cell.seed,
             "episodes": cell.train.episodes}

    def save_checkpoint():
        checkpoint.save(path, cell, model, optimizer, scheduler, sampler, state,
                        seconds_before + time.perf_counter() - start)
        write_running(options.storage_dir, cell.training_id, about, state.log)  # to watch it

    kept = f"its training checkpoint is saved in {path.parent}"
    try:
        with STOP.phase(f"training {cell.describe()}", kept, defer=True):
            train(model, optimizer, scheduler, sampler, train_set, state, cell, device,
                  validate=validation(model, adapter, cell, device),
                  augment=adapter.train_augmentation(), progress=progress,
                  checkpoint=save_checkpoint, should_stop=should_stop, prefetch=options.prefetch)
    except NumericalFault as fault:
        raise NumericalFault(f"{fault} at training episode {state.episode + 1}",
                             state.log[-20:]) from None
    if state.episode < cell.train.episodes and not plateaued(state.log, cell.train):
        raise Interrupted(f"stopped while training {cell.describe()}: {kept}; rerun the same "
                          "command to resume")
    if state.best_weights is not None:
        model.load_state_dict(state.best_weights)
    path.unlink(missing_ok=True)
    finish_running(options.storage_dir, cell.training_id)
    return {"best_episode": state.best_episode or state.episode, "log": state.log,
            "stop_episode": state.episode,
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
    kept = ("training resumes from the checkpoint saved just before this validation"
            if cell.train.checkpoint_every else "training restarts (--checkpoint-every 0)")

    def validate() -> float:
        with STOP.phase(f"validating {cell.describe()}", kept):
            return float(evaluate(model, val_set, episodes, device).mean())

    return validate


def make_row(cell: Cell, accuracies: np.ndarray, episodes_hash: str, trained: dict,
             eval_seconds: float, options: RunOptions, deviation: str = "") -> dict:
    """The results row; ``deviation``: how the tested dataset's splits differ from its standard
    one (``DatasetAdapter.split_deviation``), which the split label then says."""
    acc, ci95 = mean_ci(accuracies, options.ci_method)
    commit, dirty = options.code_state or git_state()
    resolved = cell.resolved()
    return {
        "method": cell.method.label, "dataset": cell.tested_dataset,
        "split": split_label(cell) + (f" [{deviation}]" if deviation else ""),
        "train_dataset": cell.dataset,
        "backbone": resolved["method_params"].get("backbone", ""),
        "way": cell.way, "shot": cell.shot, "query": cell.query,
        "test_episodes": cell.test_episodes, "acc": 100 * acc, "ci95": 100 * ci95,
        "ci_method": options.ci_method, "seed": cell.seed, "test_seed": cell.episode_seed,
        "train_episodes": cell.train.episodes, "train_way": cell.train_way,
        "train_shot": cell.train_shot, "train_query": cell.train.query,
        "precision": cell.train.precision,
        "best_episode": trained["best_episode"],
        "train_seconds": round(trained["train_seconds"], 2), "eval_seconds": round(eval_seconds, 2),
        "episodes_hash": episodes_hash, "train_data": trained.get("train_data", ""),
        "commit": commit, "dirty": dirty,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **{key: value for key, value in machine(options.device).items() if key != "cores"},
        "cell_id": cell.cell_id, "schema_version": results.SCHEMA_VERSION,
        "config": resolved,
    }


def split_label(cell: Cell) -> str:
    """The tested dataset's split option (or "standard"), plus any other option set off its
    default."""
    params = asdict(cell.tested_config())
    defaults = asdict(DATASETS.get(cell.tested_dataset).Config())
    label = str(params.pop("split", "standard"))
    changed = [f"{key}={value}" for key, value in params.items() if value != defaults.get(key)]
    return label + (f" ({','.join(changed)})" if changed else "")


def write_cell(out_dir: Path, cell: Cell, row: dict, accuracies, log: list[dict],
               replace: bool) -> bool:
    """Per-episode file, log and config first, the results row last (it marks the cell done).

    False: the row was already there (written by a concurrent run)."""
    import pandas as pd

    results.save_per_episode(out_dir, cell.cell_id, accuracies)
    results.atomic_write_text(results.log_path(out_dir, cell.cell_id),
                              pd.DataFrame(log, columns=["episode", "loss", "train_acc",
                                                         "val_acc", "lr"]).to_csv(index=False))
    results.atomic_write_text(Path(out_dir) / "configs" / f"{cell.cell_id}.json",
                              json.dumps(row["config"], indent=2, sort_keys=True) + "\n")
    return results.append_row(out_dir, row, replace=replace)


def record(result: CellResult, options: RunOptions, outcome: GridOutcome) -> None:
    """The driver's side of a finished cell: its files and row, written here and nowhere else."""
    cell = result.cell
    if result.failure is not None:
        outcome.failed.append((cell, record_failure(options.out_dir, cell, result.failure,
                                                    result.failure_log)))
        return
    if result.row is None:
        outcome.finished_elsewhere.append(cell)
        return
    with STOP.phase(f"writing the results of {cell.describe()}", defer=True):
        written = write_cell(options.out_dir, cell, result.row, result.accuracies, result.log,
                             options.force)
        if written and options.tensorboard is not None:
            from bench.tensorboard_log import write_cell_events

            write_cell_events(options.tensorboard, cell.describe(), cell.cell_id, result.log,
                              result.row["acc"])
    (outcome.rows if written else outcome.finished_elsewhere).append(
        result.row if written else cell)


def record_failure(out_dir: Path, cell: Cell, message: str, log: list[dict]) -> str:
    """Writes DIR/failures/<cell_id>.json (configuration, error, last log entries)."""
    path = Path(out_dir) / "failures" / f"{cell.cell_id}.json"
    diagnostic = {"cell": cell.resolved(), "error": message, "last_log": log,
                  "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    results.atomic_write_text(path, json.dumps(diagnostic, indent=2, default=str) + "\n")
    return f"{message} (diagnostic: {path})"
