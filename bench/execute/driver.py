"""Runs a grid of cells: train, evaluate, and write each finished cell's results at once.

A finished cell (its cell_id has a row in DIR/results.csv) is skipped unless ``force``; an
interrupted one resumes from its checkpoint. A cell whose loss turns NaN/inf is recorded in
DIR/failures/ and the other cells go on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from bench import results
from bench.core.cells import CellResult, RunOptions, adapter_for, check_cell
from bench.core.config import Cell
from bench.core.episodes import fixed_episodes
from bench.errors import BenchError
from bench.execute.jobs import plan_jobs, run_job
from bench.interrupt import STOP


@dataclass
class GridOutcome:
    rows: list[dict] = field(default_factory=list)
    skipped: list[Cell] = field(default_factory=list)
    failed: list[tuple[Cell, str]] = field(default_factory=list)
    finished_elsewhere: list[Cell] = field(default_factory=list)  # by a concurrent run


def run_grid(cells: list[Cell], options: RunOptions, progress_for=None,
             should_stop=lambda: False, executor=None) -> GridOutcome:
    """Run every cell; ``progress_for(cell)`` gives each cell's Progress.

    The cells become jobs, one per training (bench.execute.jobs); ``executor``
    (bench.execute.ray.executor) runs them elsewhere, else they run here one after the other.
    Either way each finished cell comes back as a CellResult that this process writes
    (``record``) the moment it arrives."""
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
            from bench.core.tensorboard_log import write_cell_events

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
