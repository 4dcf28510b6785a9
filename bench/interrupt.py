"""Ctrl-C and SIGTERM for `bench run`: stop within a second or two in every phase, lose nothing.

A run is a sequence of phases (``STOP.phase``). Most can be abandoned at any instant without
losing anything (building a dataset cache writes it atomically; evaluating writes nothing until
the cell's row), so there the signal handler raises ``Stopped`` at once. A few must finish what
they started: a training step (then a checkpoint is saved) and the writing of a finished cell's
files. Those run with ``defer=True``: the signal only sets a flag, which the training loop reads.

Python runs signal handlers between bytecodes of the main thread, so a long call into C (reading a
pickle, writing an .npz) would delay them for as long as it runs. A watchdog thread, woken by the
signal itself (``signal.set_wakeup_fd``), ends such a process if it is still in an abandonable
phase a moment after the signal: it prints the same one-line message, deletes the temporary files
the phase registered and exits with 128 + the signal (130 after Ctrl-C, 143 after SIGTERM).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

STOP_SIGNALS = frozenset((signal.SIGINT, signal.SIGTERM))
GRACE_SECONDS = 1.5  # how long the main thread may take to act on a signal before the watchdog


class Stopped(Exception):
    """A signal asked the run to stop; ``args[0]`` says in which phase and what was kept."""


@dataclass
class Phase:
    doing: str  # "evaluating trm glyphs 5-way 1-shot seed 0"
    kept: object  # "its trained model is in runs/models", or a function saying it when asked
    defer: bool = False

    @property
    def kept_text(self) -> str:
        """What was kept, as it stands now (a function is asked at the moment of the stop)."""
        return self.kept() if callable(self.kept) else self.kept


class StopControl:
    """The SIGINT/SIGTERM handling of one process; ``STOP`` is the one `bench run` installs.

    Calling it returns whether a stop was requested (the training loop's ``should_stop``).
    Without ``installed_handlers`` (tests calling the runner directly) phases only record
    what runs.
    """

    def __init__(self) -> None:
        self.requested = False
        self.installed = False
        self.stack: list[Phase] = []
        self.temporary: set[Path] = set()
        self.summary = lambda: ""  # what was finished, for the message (set by the CLI)
        self.final_message = ""
        self.signal_number = signal.SIGINT  # the stop signal received (its exit code: 128 + it)
        self._exiting = threading.Lock()

    def __call__(self) -> bool:
        return self.requested

    @property
    def current(self) -> Phase:
        return self.stack[-1] if self.stack else Phase("starting", "nothing was started")

    def message(self, phase: Phase | None = None) -> str:
        phase = phase or self.current
        summary = self.summary()
        kept = "; ".join(part for part in (summary, phase.kept_text) if part)
        return f"stopped while {phase.doing}: {kept}; rerun the same command to resume"

    @contextmanager
    def phase(self, doing: str, kept: str = "", defer: bool = False):
        """Run a block as one phase; ``defer``: a signal waits for the block's end (or a check)."""
        phase = Phase(doing, kept, defer)
        self.stack.append(phase)
        try:
            yield
        finally:
            self.stack.pop()
        if self.requested and defer and not self.current.defer:
            raise self._stopped(phase)

    def check(self) -> None:
        """Raise ``Stopped`` if a stop was requested (between cells, after deferred work)."""
        if self.requested:
            raise self._stopped()

    def _stopped(self, phase: Phase | None = None) -> Stopped:
        """The exception that ends the run, its message kept for the watchdog too."""
        self.final_message = self.message(phase)
        return Stopped(self.final_message)

    @contextmanager
    def removing_on_abort(self, path: Path):
        """``path`` (a temporary file) is deleted if the process is ended while it is written."""
        self.temporary.add(Path(path))
        try:
            yield
        except BaseException:
            Path(path).unlink(missing_ok=True)
            raise
        finally:
            self.temporary.discard(Path(path))

    @contextmanager
    def installed_handlers(self):
        """Handle SIGINT/SIGTERM (a second Ctrl-C stops even a deferred phase) with the
        watchdog running; the previous handlers are back afterwards (for in-process callers)."""
        reader, writer = os.pipe()
        os.set_blocking(writer, False)
        previous_fd = signal.set_wakeup_fd(writer, warn_on_full_buffer=False)
        previous = {number: signal.signal(number, self._handle)
                    for number in (signal.SIGINT, signal.SIGTERM)}
        self.installed, self.requested, self.final_message = True, False, ""
        watchdog = threading.Thread(target=self._watch, args=(reader,), daemon=True,
                                    name="stop-watchdog")
        watchdog.start()
        try:
            yield self
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
            signal.set_wakeup_fd(previous_fd)
            self.installed = False
            os.close(writer)  # the watchdog's read returns b"": it ends
            watchdog.join(timeout=GRACE_SECONDS * 2)
            os.close(reader)

    @property
    def exit_code(self) -> int:
        """128 + the stop signal, as shells report a process that a signal ended: 130 after
        Ctrl-C (SIGINT), 143 after SIGTERM."""
        return 128 + int(self.signal_number)

    def _handle(self, signum, frame) -> None:
        again = self.requested
        self.requested = True
        if not again:
            self.signal_number = signum
        if not self.current.defer or (again and signum == signal.SIGINT):
            raise self._stopped()

    def _watch(self, reader: int) -> None:
        while True:
            try:
                data = os.read(reader, 64)
            except OSError:
                return
            if not data:
                return
            # The wake-up fd carries the number of every signal that has a Python handler: a
            # DataLoader's SIGCHLD handler writes here too. Only SIGINT and SIGTERM are a stop.
            # (Not ``self.requested``: a main thread stuck in C has not run its handler yet.)
            received = STOP_SIGNALS.intersection(data)
            if not received:
                continue
            if not self.requested:  # the main thread has not run its handler (stuck in C)
                self.signal_number = signal.Signals(min(received))
            time.sleep(GRACE_SECONDS)
            if not self.installed:
                return
            if not self.current.defer:  # a deferred phase (a training step) ends by itself
                self.force_exit()

    def force_exit(self) -> None:
        """Print the message, delete registered temporary files, exit 128 + the signal (130 for
        SIGINT, 143 for SIGTERM) from any thread."""
        if not self._exiting.acquire(blocking=False):
            return
        for path in list(self.temporary):
            path.unlink(missing_ok=True)
        try:
            sys.stderr.write((self.final_message or self.message()) + "\n")
            sys.stderr.flush()
        finally:
            os._exit(self.exit_code)

    def exit(self, message: str) -> None:
        """The main thread's exit after ``Stopped``: one line, code 128 + the signal (130 after
        SIGINT, 143 after SIGTERM). Once installed it skips
        the interpreter's teardown (1.5 s with torch loaded): every file is already closed and
        complete, since results, checkpoints and caches are written atomically."""
        if not self._exiting.acquire(blocking=False):
            time.sleep(GRACE_SECONDS * 4)  # the watchdog is already ending the process
        sys.stderr.write(message + "\n")
        sys.stdout.flush()
        sys.stderr.flush()
        if self.installed:
            os._exit(self.exit_code)
        sys.exit(self.exit_code)


STOP = StopControl()
