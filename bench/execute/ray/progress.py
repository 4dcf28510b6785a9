"""Progress of `bench run --executor ray`: workers report to a small Ray actor (``Board``), the
driver draws what it holds: a bar per running task and one for the grid's total (rich, on a
terminal), or a line when a task starts, is retried, or a cell is written (logs)."""

from __future__ import annotations

import os
import socket
import time

import click

from bench.core.model import Progress
from bench.execute.progress import bar_label, pretrain_status

REPORT_SECONDS = 1.0  # a worker reports training progress at most this often


def preparation_board_key(key: str) -> str:
    """A preparation's key on the Board (jobs have int keys, preparations these)."""
    return f"preparation {key}"


class Board:
    """The state of every task, by key (held by a Ray actor, written by the workers)."""

    def __init__(self) -> None:
        self.state: dict[int, dict] = {}

    def report(self, key: int, update: dict, start: bool = False) -> None:
        entry = self.state.setdefault(key, {"starts": 0})
        entry["starts"] += int(start)
        entry.update(update)

    def snapshot(self) -> dict[int, dict]:
        return self.state


class BoardProgress(Progress):
    """A task's Progress (bench.core.model.Progress): its cell, stage and counts go to the
    Board, throttled."""

    def __init__(self, board, key: int):
        self.board, self.key = board, key
        self.label, self.val_text, self.last = "", "", 0.0

    def started(self) -> None:
        self.board.report.remote(self.key, {"stage": "starting", "done": 0, "total": None,
                                            "where": f"{socket.gethostname()}:{os.getpid()}"},
                                 start=True)

    def for_cell(self, cell) -> Progress:
        self.label, self.val_text = bar_label(cell), ""
        return self

    def _send(self, update: dict, final: bool = False) -> None:
        now = time.monotonic()
        if final or now - self.last >= REPORT_SECONDS:
            self.last = now
            self.board.report.remote(self.key, {"label": self.label, **update})

    def train_step(self, episode, total, loss):
        self._send({"stage": "train", "done": episode, "total": total,
                    "status": f"loss {loss:.3f}{self.val_text}"}, final=episode == total)

    def validated(self, episode, accuracy):
        self.val_text = f" val {100 * accuracy:.1f}%"

    def evaluated(self, done, total, resumed=0):
        self._send({"stage": "test", "done": done, "total": total, "status": ""},
                   final=done in (resumed, total))

    def pretrained(self, epoch, total, loss, images_per_second=None):
        if loss == loss:
            self.loss_text = f"loss {loss:.3f}"
        self._send({"stage": "pretrain", "done": epoch, "total": total,
                    "status": pretrain_status(getattr(self, "loss_text", ""),
                                              images_per_second)},
                   final=epoch == int(epoch))

    def prepared(self) -> None:
        """The preparation is over (done, failed or stopped): its bar goes."""
        self.board.report.remote(self.key, {"stage": "prepared"})


class RayView:
    """What the driver shows, from Board snapshots and the results it records."""

    def __init__(self, bars, jobs):
        self.bars, self.jobs = bars, jobs
        self.cells = sum(len(job.cells) for job in jobs)
        self.written, self.running, self.starts, self.over = 0, {}, {}, set()
        self.tenths: dict[tuple[int, str], int] = {}
        self.total = bars.add_task(f"grid: {self.cells} cells in {len(jobs)} Ray tasks",
                                   total=self.cells, status="") if bars is not None else None

    def update(self, snapshot: dict[int, dict]) -> None:
        for key, entry in snapshot.items():
            if key not in self.over:
                self._show(key, entry)
        if self.bars is not None:
            seen = {key for key in set(snapshot) | self.over if isinstance(key, int)}
            queued = len(self.jobs) - len(seen)
            self.bars.update(self.total, completed=self.written,
                             status=f"{len(self.running)} running, {queued} queued")

    def _show(self, key: int | str, entry: dict) -> None:
        if entry.get("stage") == "prepared":  # a preparation task (str key) that ended
            self.finished(key)
            return
        label = entry.get("label") or (bar_label(self.jobs[key].cells[0])
                                       if isinstance(key, int) else str(key))
        retry = f" (retry {entry['starts'] - 1})" if entry.get("starts", 1) > 1 else ""
        if self.starts.get(key) != entry.get("starts"):
            self.starts[key] = entry.get("starts")
            if self.bars is None:
                click.echo(f"ray task {entry.get('where', '?')}: {label}{retry} started",
                           err=True)
        if self.bars is None:
            self.running[key] = None
            self._line(key, label + retry, entry)
            return
        stage = {"train": "train", "test": "test ", "pretrain": "pretrain"}.get(
            entry.get("stage"), "start")
        if key not in self.running:
            self.running[key] = self.bars.add_task("", total=None, status="")
        self.bars.update(self.running[key], description=f"{stage} {label}{retry}",
                         completed=entry.get("done", 0), total=entry.get("total"),
                         status=entry.get("status", ""))

    def _line(self, key: int, label: str, entry: dict) -> None:
        """Without a terminal: a line at every tenth of a task's training and evaluation."""
        stage, done, total = entry.get("stage"), entry.get("done", 0), entry.get("total")
        if stage not in ("train", "test", "pretrain") or not total:
            return
        tenth = int(10 * done / total)
        if tenth > self.tenths.get((key, stage), 0):
            self.tenths[(key, stage)] = tenth
            status = f" {entry['status']}" if entry.get("status") else ""
            unit = "epoch " if stage == "pretrain" else ""
            shown = f"{done:g}" if stage == "pretrain" else f"{done}"
            name = {"train": "train", "test": "test "}.get(stage, stage)
            click.echo(f"{name} {label}: {unit}{shown}/{total}{status}", err=True)

    def recorded(self, result) -> None:
        self.written += 1
        if self.bars is None and result.row is not None:
            click.echo(f"done  {result.cell.describe()}: {result.row['acc']:.2f}% "
                       f"({self.written}/{self.cells} cells)", err=True)

    def finished(self, key: int) -> None:
        self.over.add(key)
        task = self.running.pop(key, None)
        if task is not None and self.bars is not None:
            self.bars.remove_task(task)

    def close(self) -> None:
        if self.bars is not None:
            self.bars.update(self.total, completed=self.written, status="done")
