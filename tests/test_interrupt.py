"""Ctrl-C in every phase of `bench run`: exit 130 within seconds, one resume line, nothing lost."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import PROGRESS

from bench.interrupt import StopControl, Stopped

BENCH = str(Path(sys.executable).parent / "bench")
TINY = ["--shots", "1", "--train-episodes", "3", "--val-every", "0", "--query", "5",
        "--train-query", "5", "-D", "instances=8", "--threads", "1"]
# TRM's head makes evaluation slow enough (seconds) to be interrupted in the middle of it.
ARGS = ["run", "--methods", "trm", *TINY, "--test-episodes", "1000"]
RESUME = "rerun the same command to resume"


@pytest.fixture(scope="module")
def straight(tmp_path_factory, glyph_cache) -> pd.DataFrame:
    """The numbers of an uninterrupted run, which every interrupted one must reproduce."""
    return finished(ARGS, tmp_path_factory.mktemp("straight"), glyph_cache)


def bench(args, out, cache):
    env = {**os.environ, "FEWSHOT_BENCH_CACHE": str(cache)}
    return subprocess.Popen([BENCH, *args, "--out", str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finished(args, out, cache) -> pd.DataFrame:
    process = bench(args, out, cache)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    return pd.read_csv(out / "results.csv")


def interrupt_when(process, marker: str, delay: float = 0.3,
                   sig=signal.SIGINT) -> tuple[int, float, str]:
    """SIGINT ``delay`` s after ``marker`` appears in the progress (stderr, or stdout for the
    scripts here that print there): (exit code, seconds to exit, stderr without progress
    lines)."""
    stream = process.stdout if marker in ("ready",) else process.stderr
    for line in stream:
        if marker in line:
            break
    else:
        raise AssertionError(f"{marker!r} never printed: {process.communicate()}")
    time.sleep(delay)
    process.send_signal(sig)
    sent = time.monotonic()
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError("still running 60 s after SIGINT") from None
    message = "\n".join(line for line in stderr.splitlines() if not line.startswith(PROGRESS))
    return process.returncode, time.monotonic() - sent, message


def assert_same_numbers(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert len(a) == len(b) == 1
    assert list(a["acc"]) == list(b["acc"]) and list(a["ci95"]) == list(b["ci95"])
    assert list(a["episodes_hash"]) == list(b["episodes_hash"])


def test_sigint_during_evaluation_stops_at_once_and_resumes(tmp_path, glyph_cache, straight):
    out = tmp_path / "stopped"
    code, seconds, stderr = interrupt_when(bench(ARGS, out, glyph_cache), "evaluating")
    assert code == 130, stderr
    assert seconds < 3, f"exit took {seconds:.1f} s"
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "stopped while evaluating trm" in lines[0]
    assert RESUME in lines[0] and "trained model is kept" in lines[0]
    assert not (out / "results.csv").exists()
    assert_same_numbers(straight, finished(ARGS, out, glyph_cache))


def test_a_test_stopped_halfway_resumes_from_its_saved_episodes(tmp_path, glyph_cache, straight):
    """Every 100 test episodes are saved: a rerun takes them over, evaluates the rest, and gives
    the uninterrupted numbers; the saved progress goes once the cell is written."""
    out = tmp_path / "halfway"
    code, _, stderr = interrupt_when(bench(ARGS, out, glyph_cache), "200/1000 episodes",
                                     delay=0.0)
    assert code == 130, stderr
    assert "test episodes done so far" in stderr
    (saved,) = (out / "checkpoints").glob("test-*.npz")
    with np.load(saved) as progress:
        assert len(progress["accuracies"]) >= 200
    process = bench(ARGS, out, glyph_cache)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    assert "(resuming after episode" in stderr
    assert_same_numbers(straight, pd.read_csv(out / "results.csv"))
    assert not saved.exists()


def test_sigint_during_cache_build_stops_at_once_and_resumes(tmp_path, straight):
    cache = tmp_path / "fresh-cache"
    out = tmp_path / "stopped"
    code, seconds, stderr = interrupt_when(bench(ARGS, out, cache), "building its cache")
    assert code == 130, stderr
    assert seconds < 3, f"exit took {seconds:.1f} s"
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "stopped while building the glyphs cache" in lines[0]
    assert RESUME in lines[0]
    assert not list(cache.glob("*.npz")) and not list(cache.glob("*tmp*"))
    assert_same_numbers(straight, finished(ARGS, out, cache))


def test_deferred_phase_waits_and_second_signal_does_not():
    """In a deferred phase (a training step) a signal only sets the flag, which the phase's end
    turns into Stopped; outside one, or on a second Ctrl-C, the handler raises at once."""
    stop = StopControl()
    with pytest.raises(Stopped, match="stopped while evaluating x: model kept; rerun"), \
            stop.phase("evaluating x", "model kept"):
        stop._handle(signal.SIGINT, None)
    stop = StopControl()
    with pytest.raises(Stopped, match="stopped while training x: checkpoint saved"), \
            stop.phase("training x", "checkpoint saved", defer=True):
        stop._handle(signal.SIGTERM, None)
        assert stop()  # the training loop sees it, saves a checkpoint and returns
    stop = StopControl()
    with pytest.raises(Stopped), stop.phase("training x", "", defer=True):
        stop._handle(signal.SIGINT, None)
        stop._handle(signal.SIGINT, None)
        raise AssertionError("the second Ctrl-C did not stop the deferred phase")


def test_temporary_file_is_removed_when_its_phase_is_abandoned(tmp_path):
    stop = StopControl()
    path = tmp_path / "cache.tmp.npz"
    with pytest.raises(Stopped), stop.removing_on_abort(path):
        path.write_bytes(b"half")
        raise Stopped("signal")
    assert not path.exists() and not stop.temporary


WEDGED = """
import hashlib
from bench.interrupt import STOP

with STOP.installed_handlers(), STOP.phase("hashing", "nothing to keep"):
    print("ready", flush=True)
    # one C call of many seconds that releases the GIL but never returns to Python, so the
    # signal handler cannot run (as reading a large pickle): only the watchdog can end it
    hashlib.pbkdf2_hmac("sha256", b"password", b"salt", 10**9)
    print("finished", flush=True)
"""


def test_watchdog_ends_a_process_stuck_in_a_long_c_call():
    process = subprocess.Popen([sys.executable, "-c", WEDGED], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    code, seconds, stderr = interrupt_when(process, "ready", delay=0.2)
    assert code == 130 and seconds < 4, (code, seconds, stderr)
    assert stderr.strip() == f"stopped while hashing: nothing to keep; {RESUME}"


CHILD_SIGNALS = """
import os, signal, time
from bench.interrupt import GRACE_SECONDS, STOP

signal.signal(signal.SIGCHLD, lambda *args: None)  # as a DataLoader's worker handling does
with STOP.installed_handlers(), STOP.phase("evaluating", "nothing to keep"):
    for _ in range(3):
        os.kill(os.getpid(), signal.SIGCHLD)  # a byte on the watchdog's wake-up pipe
        time.sleep(0.2)
    time.sleep(GRACE_SECONDS + 1.0)
    print("still running", flush=True)
"""


def test_a_signal_that_is_not_a_stop_never_ends_the_run():
    """--prefetch runs exited 130 by themselves: the DataLoader's SIGCHLD handler writes to the
    same wake-up fd, and the watchdog took any byte for a stop."""
    result = subprocess.run([sys.executable, "-c", CHILD_SIGNALS], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "still running" and "stopped" not in result.stderr


def test_sigterm_exits_143_and_sigint_130(tmp_path, glyph_cache):
    """128 + the signal, as a shell reports a process a signal ended."""
    code, _, stderr = interrupt_when(bench(ARGS, tmp_path / "term", glyph_cache), "evaluating",
                                     sig=signal.SIGTERM)
    assert code == 143, stderr
    assert "stopped while evaluating" in stderr
