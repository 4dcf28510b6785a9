"""Progress of `bench run`: rich bars on a terminal, plain lines in logs (CI, nohup, pipes).

The runner itself only calls a ``bench.runner.Progress`` object.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

import click

from bench.runner import Progress


@contextmanager
def live_progress():
    """rich bars when stdout is a terminal, else None (the plain-line progress is used)."""
    if not sys.stdout.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bars, TextColumn, \
        TimeElapsedColumn, TimeRemainingColumn

    bars = Bars(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn())
    with bars:
        yield bars


def progress_for(bars, cell) -> Progress:
    return RichProgress(bars, cell) if bars is not None else LineProgress(cell)


class RichProgress(Progress):
    def __init__(self, bars, cell):
        self.bars = bars
        self.label = cell.describe()
        self.train_task = None
        self.eval_task = None
        self.val_text = ""

    def train_step(self, episode, total, loss):
        if self.train_task is None:
            self.train_task = self.bars.add_task(f"train {self.label}", total=total, status="")
        if episode % 10 == 0 or episode == total:
            self.bars.update(self.train_task, completed=episode,
                             status=f"loss {loss:.3f}{self.val_text}")

    def validated(self, episode, accuracy):
        self.val_text = f" val {100 * accuracy:.1f}%"

    def evaluated(self, done, total):
        if self.eval_task is None:
            self.eval_task = self.bars.add_task(f"test  {self.label}", total=total, status="")
        self.bars.update(self.eval_task, completed=done)


class LineProgress(Progress):
    """A line every tenth of training and when testing ends."""

    def __init__(self, cell):
        self.label = cell.describe()
        self.val_text = ""

    def train_step(self, episode, total, loss):
        if episode == total or episode % max(1, total // 10) == 0:
            click.echo(f"train {self.label}: episode {episode}/{total} loss {loss:.3f}"
                       f"{self.val_text}")

    def validated(self, episode, accuracy):
        self.val_text = f" val {100 * accuracy:.1f}%"

    def evaluated(self, done, total):
        if done == total:
            click.echo(f"test  {self.label}: {total} episodes done")
