"""One cell's measurement: a trained model evaluated on the cell's fixed test episodes, as the
CellResult with its results row. In-domain cells (bench.execute.jobs) and cross-domain cells
(bench.evaluate.cross_domain) end the same way here."""

from __future__ import annotations

import time

import torch

from bench.core.cells import CellResult, RunOptions, make_row, stored_model_path
from bench.core.config import Cell
from bench.core.episodes import EpisodeList, fixed_episodes
from bench.core.model import Progress
from bench.data import ImageSet
from bench.evaluate.episodic import evaluate
from bench.interrupt import STOP


def cell_episodes(cell: Cell, test_set: ImageSet) -> EpisodeList:
    """The cell's fixed test episodes of ``test_set``, drawn with its episode seed (the same for
    every method). Callers draw them while preparing the cell, before its model is trained or
    loaded (the first draw of a process is slow: it belongs to the preparation)."""
    return fixed_episodes(test_set, cell.way, cell.shot, cell.query, cell.test_episodes,
                          cell.episode_seed)


def measure(cell: Cell, model, trained: dict, test_set: ImageSet, episodes: EpisodeList,
            options: RunOptions, progress: Progress, deviation: str = "") -> CellResult:
    """``model`` (trained as ``trained`` records: best episode, seconds, log, training data)
    evaluated on ``episodes`` of ``test_set`` (``cell_episodes``); ``deviation``: how the tested
    dataset's splits differ from its standard one (``DatasetAdapter.split_deviation``)."""
    start = time.perf_counter()
    with STOP.phase(f"evaluating {cell.describe()}",
                    f"its trained model is kept in {stored_model_path(cell, options).parent}"):
        accuracies = evaluate(model, test_set, episodes, torch.device(options.device),
                              progress=progress)
    row = make_row(cell, accuracies, episodes.hash, trained, time.perf_counter() - start,
                   options, deviation)
    return CellResult(cell, row, accuracies, trained["log"])
