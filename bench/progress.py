"""rich progress bars for `bench run` (the runner itself only calls a Progress object)."""

from __future__ import annotations

from contextlib import contextmanager

from bench.runner import Progress


@contextmanager
def live_progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bars, TextColumn, \
        TimeElapsedColumn, TimeRemainingColumn

    bars = Bars(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn())
    with bars:
        yield bars


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
