"""Checks of cross-domain cells made when the run is planned, before anything runs: the two
datasets fit each other and every model to test is stored."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bench import results
from bench.core.cells import RunOptions, stored_model_path
from bench.core.config import Cell
from bench.core.precision import PRECISIONS
from bench.data import DatasetAdapter
from bench.errors import BenchError
from bench.registry import DATASETS


def check_cross_cells(cells: list[Cell], options: RunOptions) -> None:
    """Before anything runs: the datasets fit each other and every model to test is stored."""
    cross = [cell for cell in cells if cell.test_dataset]
    if cross and options.models_from is not None and not Path(options.models_from).is_dir():
        raise BenchError(f"--models-from {options.models_from} does not exist; pass the --out "
                         "DIR of the run that trained the models")
    for cell in cross:
        check_compatible(cell)
    finished = set() if options.force else results.finished_cell_ids(options.out_dir)
    missing = [cell for cell in cross
               if cell.cell_id not in finished and not stored_model_path(cell, options).exists()]
    if missing:
        cell, more = missing[0], f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        folder = stored_model_path(cell, options).parent
        other = stored_precision(cell, options)
        fix = (f"a model trained in {other} is stored there: add --precision {other}" if other
               else "run the same command without --test-dataset first, or pass --models-from "
                    "DIR of the run that trained it")
        raise BenchError(f"no trained model for {cell.describe()}{more} in {folder} (training id "
                         f"{cell.training_id}); {fix}")


def stored_precision(cell: Cell, options: RunOptions) -> str | None:
    """The other training precision whose model of this cell is stored, if one is: a model
    trained under `--precision auto` on another machine may be bf16 where auto means fp32 here."""
    for precision in PRECISIONS:
        other = replace(cell, train=replace(cell.train, precision=precision))
        if precision != cell.train.precision and stored_model_path(other, options).exists():
            return precision
    return None


def check_compatible(cell: Cell) -> None:
    trained, tested = DATASETS.get(cell.dataset), DATASETS.get(cell.test_dataset)
    if trained.channels != tested.channels:
        raise BenchError(f"{cell.dataset} has {trained.channels}-channel images and "
                         f"{cell.test_dataset} {tested.channels}-channel ones: a model trained on "
                         f"one cannot test on the other (no channel conversion is offered); pick "
                         f"a test dataset with {trained.channels}-channel images")
    train_side = image_side(trained, cell.dataset_config())
    test_side = image_side(tested, cell.tested_config())
    if train_side != test_side:
        raise BenchError(f"the model is trained on {train_side}×{train_side} {cell.dataset} "
                         f"images but {cell.test_dataset} gives {test_side}×{test_side}; add "
                         f"-T size={train_side}")


def image_side(adapter_class: type[DatasetAdapter], config) -> int:
    return int(getattr(config, "size", adapter_class.image_size))
