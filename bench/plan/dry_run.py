"""`bench run --dry-run`: what a run would do, before it does anything.

Lists the planned cells and, for each, whether it is finished already, whether its model is
stored (only evaluated), trained here (and by how many cells it is shared), or resumed from a
checkpoint; the pre-trainings the run needs; and an estimate of the time, from the cells this
machine's CPU has already finished in the same --out (seconds per training episode and per test
episode of the same method, dataset and training shape). Trains and evaluates nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import click

from bench import results
from bench.core import models
from bench.core.config import Cell
from bench.core.env import cpu_model


def describe_plan(cells: list[Cell], out_dir: Path, storage_dir: Path, preset: dict | None,
                  threads: int | None, models_from: Path | None = None) -> list[str]:
    """The dry run's lines (no side effects). A cross-domain cell (--test-dataset) never trains:
    its model is read from ``models_from`` (default: the storage folder)."""
    lines = []
    if preset:
        lines.append("preset settings (command-line options override them):")
        lines += [f"  {key} = {value}" for key, value in preset.items()]
    finished = results.finished_cell_ids(out_dir)
    shared = Counter(cell.training_id for cell in cells if cell.cell_id not in finished)
    rates = measured_rates(out_dir)
    trained, seen, total, unknown = 0, set(), 0.0, []
    lines.append(f"{len(cells)} cells in {out_dir}:")
    for cell in cells:
        if cell.cell_id in finished:
            status, seconds = "finished (skipped)", 0.0
        else:
            rate = rates.get(_shape(cell))
            seconds = rate[1] * cell.test_episodes if rate else None
            if cell.test_dataset:  # planning checked that its model is stored
                status = (f"evaluate the model trained on {cell.dataset}, stored in "
                          f"{models_from or storage_dir} (trains nothing)")
            elif models.model_path(storage_dir, cell).exists() or cell.training_id in seen:
                status = ("evaluate the stored model" if cell.training_id not in seen
                          else "evaluate the model trained for a cell above")
            else:
                trained += 1
                resume = models.checkpoint_path(storage_dir, cell).exists()
                status = ("resume its training from a checkpoint" if resume else
                          f"train {cell.train.episodes} episodes" if cell.train.episodes else
                          "no episodic training (the pre-trained backbone is its model)") + (
                    f" (model shared by {shared[cell.training_id]} cells)"
                    if shared[cell.training_id] > 1 else "")
                if cell.train.plateau_window and cell.train.episodes:
                    status += (f", or fewer: stops once validation rose ≤ "
                               f"{cell.train.plateau_delta:g} points over "
                               f"{cell.train.plateau_window} episodes")
                seconds = (rate[0] * cell.train.episodes + seconds) if rate else None
            seen.add(cell.training_id)
            if seconds is None:
                unknown.append(cell.method.label)
            else:
                total += seconds
        lines.append(f"  {cell.describe()}: {status}")
    pretraining = sorted({(cell.method_config().backbone, cell.seed) for cell in cells
                          if cell.train.pretrain_epochs and cell.cell_id not in finished
                          and not cell.test_dataset})
    if pretraining:
        first = next(cell for cell in cells if cell.train.pretrain_epochs)
        lines.append(f"pre-training ({first.train.pretrain_epochs} epochs, batch "
                     f"{first.train.pretrain_batch}) of " + ", ".join(
                         f"{backbone} seed {seed}" for backbone, seed in pretraining)
                     + f": stored ones in {storage_dir}/pretrained are reused")
    lines.append(f"{trained} trainings to run")
    where = (f"from the cells {cpu_model()} finished in {out_dir} (seconds per training and per "
             "test episode of the same method, dataset and training shape; pre-training "
             "included where those cells had it)")
    if total:
        lines.append(f"estimated time: {_duration(total)} with the thread count those cells "
                     f"had{'' if threads is None else f' (this run: {threads})'}, {where}"
                     + (f"; no estimate for {', '.join(sorted(set(unknown)))}" if unknown
                        else ""))
    else:
        lines.append("estimated time: unknown: this CPU has finished no cell of this method, "
                     f"dataset and training shape in {out_dir} (`bench perf` measures step "
                     "rates)")
    return lines


def _shape(cell: Cell) -> tuple:
    return (cell.method.label, cell.tested_dataset, cell.train_way, cell.train_shot,
            cell.train.query, cell.train.precision, cell.shot)


def measured_rates(out_dir: Path) -> dict:
    """{shape: (seconds per training episode, seconds per test episode)} of the rows this CPU
    wrote in ``out_dir``."""
    if not results.results_path(out_dir).exists():
        return {}
    frame = results.load(out_dir)
    frame = frame[frame["cpu"] == cpu_model()]
    rates = defaultdict(list)
    for row in frame.itertuples():
        if not row.train_episodes or not row.test_episodes:
            continue
        shape = (row.method, row.dataset, row.train_way, row.train_shot, row.train_query,
                 row.precision, row.shot)
        rates[shape].append((row.train_seconds / row.train_episodes,
                             row.eval_seconds / row.test_episodes))
    return {shape: tuple(sum(v) / len(values) for v in zip(*values))
            for shape, values in rates.items()}


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def print_plan(cells, run_options, preset_name: str | None, threads) -> None:
    from bench.plan.presets import PRESETS

    preset = PRESETS[preset_name]["options"] if preset_name else None
    for line in describe_plan(cells, run_options.out_dir, run_options.storage_dir, preset,
                              threads, run_options.models_from):
        click.echo(line)
