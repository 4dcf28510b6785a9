"""`bench run --tensorboard DIR`: each finished cell's training log as TensorBoard event files.

One TensorBoard run per cell, ``DIR/<label>-<cell_id>`` (the label says method, dataset, shape
and seed; the id keeps two cells with one label apart), with the scalars ``loss``,
``train_acc`` and ``val_acc`` (percent) and ``lr`` against the training episode, and the cell's
test accuracy as ``test_acc`` at the last episode. Written by the driver when the cell's results
are written, so it works the same with Ray. TensorBoard is an optional dependency:
``pip install 'fewshot-bench[tensorboard]'``.
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.errors import BenchError

INSTALL = "pip install 'fewshot-bench[tensorboard]'"


def check_available() -> None:
    """A one-line error naming the install command where TensorBoard is not installed."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise BenchError(f"--tensorboard needs the tensorboard package: {INSTALL} (or pip "
                         "install tensorboard)") from None


def run_name(label: str, cell_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=,()-]+", "_", label).strip("_") + f"-{cell_id}"


def write_cell_events(directory: Path, label: str, cell_id: str, log: list[dict],
                      test_accuracy: float) -> Path:
    """The event files of one cell; returns the run's folder."""
    from torch.utils.tensorboard import SummaryWriter

    folder = Path(directory) / run_name(label, cell_id)
    writer = SummaryWriter(log_dir=str(folder))
    try:
        last = 0
        for entry in log:
            step = int(entry["episode"])
            last = max(last, step)
            writer.add_scalar("loss", float(entry["loss"]), step)
            writer.add_scalar("train_acc", 100.0 * float(entry["train_acc"]), step)
            writer.add_scalar("lr", float(entry["lr"]), step)
            if entry["val_acc"] == entry["val_acc"]:  # NaN: no validation at this episode
                writer.add_scalar("val_acc", 100.0 * float(entry["val_acc"]), step)
        writer.add_scalar("test_acc", float(test_accuracy), last)
    finally:
        writer.close()
    return folder
