"""Progress of `bench run`: rich bars on a terminal, plain lines in logs (CI, nohup, pipes).

The runner itself only calls a ``bench.train.runner.Progress`` object.
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager

import click

from bench.core.model import Progress


@contextmanager
def live_progress():
    """rich bars when stdout is a terminal, else None (the plain-line progress is used)."""
    if not sys.stdout.isatty():
        yield None
        return
    with make_bars() as bars:
        yield bars


def make_bars(console=None):
    """Progress bars that keep their counts and times on an 80-column terminal: the label is
    shortened (with …) and the status wraps under it before anything else gives way."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as Bars
    from rich.table import Column

    return Bars(TextColumn("{task.description}", table_column=Column(
                    ratio=3, no_wrap=True, overflow="ellipsis", min_width=12)),
                BarColumn(bar_width=10),
                MofNCompleteColumn(table_column=Column(no_wrap=True)),
                TextColumn("{task.fields[status]}", table_column=Column(ratio=1, min_width=10)),
                TimeElapsedColumn(table_column=Column(no_wrap=True)),
                TimeRemainingColumn(table_column=Column(no_wrap=True)),
                console=console, expand=True)


@contextmanager
def announce_cache_builds(bars=None):
    """Print the data layer's notices (a cache being built, and how long it took) as lines;
    with ``bars`` (a terminal) a pulsing bar with the elapsed time also shows the build."""
    logger = logging.getLogger("bench")
    building = {}

    class Echo(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            click.echo(record.getMessage(), err=True)  # progress: never in the results
            event, what = getattr(record, "cache_build", None), getattr(record, "what", "")
            if bars is not None and event == "start":
                building[what] = bars.add_task(f"building the {what} cache", total=None,
                                               status="")
            elif bars is not None and event == "done" and what in building:
                bars.remove_task(building.pop(what))

    handler = Echo(logging.INFO)
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def progress_for(bars, cell) -> Progress:
    return RichProgress(bars, cell) if bars is not None else LineProgress(cell)


def bar_label(cell) -> str:
    """What a bar says, the distinguishing part first (the method's parameters may be cut):
    "5-way 1-shot seed 0 trm(attn_dim=128)"; a run has one dataset, so it is left out."""
    from rich.markup import escape

    return escape(f"{cell.way}-way {cell.shot}-shot seed {cell.seed} {cell.method.label}")


class RichProgress(Progress):
    def __init__(self, bars, cell):
        self.bars = bars
        self.label = bar_label(cell)
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

    def pretrained(self, epoch, total, loss, images_per_second=None):
        if getattr(self, "pretrain_task", None) is None:
            self.pretrain_task = self.bars.add_task(f"pretrain {self.label}", total=total,
                                                    status="")
        if loss == loss:  # an epoch's end: its loss stays shown until the next one ends
            self.pretrain_loss = f"loss {loss:.3f}"
        self.bars.update(self.pretrain_task, completed=epoch,
                         status=pretrain_status(getattr(self, "pretrain_loss", ""),
                                                images_per_second))

    def evaluated(self, done, total, resumed=0):
        if self.eval_task is None:
            self.eval_task = self.bars.add_task(f"test  {self.label}", total=total, status="")
        self.bars.update(self.eval_task, completed=done)


class LineProgress(Progress):
    """Plain lines on stderr (stdout holds the results table): every tenth of training with the
    rate and the time left, every tenth of an evaluation, and when each ends."""

    def __init__(self, cell):
        self.label = cell.describe()
        self.val_text = ""
        self.started: dict[str, tuple[float, int]] = {}

    def _rate(self, what: str, done: int, total: int, unit: str = "") -> str:
        """", 1.23/s, 4:56 left" for ``what`` since its first report ("" while too soon)."""
        import time

        now = time.monotonic()
        start, first = self.started.setdefault(what, (now, done))
        if done <= first or now - start < 1.0:  # too soon for a rate worth printing
            return ""
        rate = (done - first) / (now - start)
        left = (total - done) / rate
        speed = f", {rate:.2f}{' ' + unit if unit else ''}/s"
        return f"{speed}, {_clock(left)} left" if done < total else speed

    def train_step(self, episode, total, loss):
        self._rate("train", episode - 1, total)  # starts the clock at the first step
        if episode == total or episode % max(1, total // 10) == 0:
            click.echo(f"train {self.label}: episode {episode}/{total} loss {loss:.3f}"
                       f"{self.val_text}{self._rate('train', episode, total)}", err=True)

    def validated(self, episode, accuracy):
        self.val_text = f" val {100 * accuracy:.1f}%"

    def pretrained(self, epoch, total, loss, images_per_second=None):
        if epoch != int(epoch):  # within an epoch: the bars show it, the log waits for its end
            return
        epoch = int(epoch)
        if not epoch:
            self.started.pop("pretrain", None)  # epoch 0 (re)starts the clock
        left = self._rate("pretrain", epoch, total, unit="epochs")
        status = pretrain_status(f"loss {loss:.3f}" if loss == loss else "", images_per_second)
        click.echo(f"pretrain {self.label}: epoch {epoch}/{total}"
                   + (f" {status}" if status else "") + left, err=True)

    def evaluated(self, done, total, resumed=0):
        if done == resumed:  # the start: the rate counts the episodes evaluated from here on
            self.started.pop("test", None)
            self._rate("test", done, total)
            click.echo(f"test  {self.label}: evaluating {total} episodes"
                       + (f" (resuming after episode {resumed}, saved by an interrupted run)"
                          if resumed else ""), err=True)
        elif done == total:
            click.echo(f"test  {self.label}: {total} episodes done"
                       f"{self._rate('test', done, total)}", err=True)
        elif done % max(100, total // 10) == 0:
            click.echo(f"test  {self.label}: {done}/{total} episodes"
                       f"{self._rate('test', done, total)}", err=True)


def pretrain_status(loss_text: str, images_per_second: float | None) -> str:
    """"loss 2.301, 812 images/s" (either part may be absent)."""
    rate = f"{images_per_second:.0f} images/s" if images_per_second else ""
    return ", ".join(part for part in (loss_text, rate) if part)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"
