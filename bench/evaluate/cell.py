"""One cell's measurement: a trained model evaluated on the cell's fixed test episodes, as the
CellResult with its results row. In-domain cells (bench.execute.jobs) and cross-domain cells
(bench.evaluate.cross_domain) end the same way here."""

from __future__ import annotations

import hashlib
import io
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.core import models
from bench.core.cells import CellResult, RunOptions, make_row, stored_model_path
from bench.core.config import Cell
from bench.core.episodes import EpisodeList, fixed_episodes
from bench.core.model import Progress
from bench.data import ImageSet
from bench.evaluate.episodic import REPORT_EVERY, evaluate
from bench.interrupt import STOP
from bench.results import atomic_write_bytes


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
    saved = SavedTest(models.saved_test_path(options.storage_dir, cell),
                         f"{episodes.hash}:{model_fingerprint(model)}")
    done, seconds_before = saved.load()
    start = time.perf_counter()
    with STOP.phase(f"evaluating {cell.describe()}",
                    f"its trained model is kept in {stored_model_path(cell, options).parent}, "
                    f"and the test episodes done so far (every {REPORT_EVERY}) in "
                    f"{saved.path.parent}"):
        accuracies = evaluate(model, test_set, episodes, torch.device(options.device),
                              progress=progress, done=done,
                              save=lambda so_far: saved.save(
                                  so_far, seconds_before + time.perf_counter() - start))
    row = make_row(cell, accuracies, episodes.hash, trained,
                   seconds_before + time.perf_counter() - start, options, deviation)
    saved.path.unlink(missing_ok=True)  # the caller writes the finished result next
    return CellResult(cell, row, accuracies, trained["log"])


def model_fingerprint(model: torch.nn.Module) -> str:
    """A digest of the model's weights and buffers: saved test progress is taken over only by
    the same model."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy()
                      .tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class SavedTest:
    """The accuracies of an unfinished test evaluation, saved every ``REPORT_EVERY`` episodes,
    so that a run stopped in a long test (a TRM 5-shot test on 84×84 images is most of an
    hour on 2 cores) resumes it instead of starting again. ``key`` ties them to the episodes
    and the model's weights; saved progress under another key, or unreadable, is ignored."""

    path: Path
    key: str

    def load(self) -> tuple[np.ndarray | None, float]:
        """(accuracies done, seconds they took), or (None, 0.0) where nothing usable is saved."""
        try:
            with np.load(self.path, allow_pickle=False) as saved:
                if str(saved["key"]) != self.key:
                    return None, 0.0
                return np.array(saved["accuracies"], dtype=np.float64), float(saved["seconds"])
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            return None, 0.0

    def save(self, accuracies: np.ndarray, seconds: float) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, key=np.array(self.key), accuracies=accuracies,
                 seconds=np.array(seconds))
        atomic_write_bytes(self.path, buffer.getvalue())
