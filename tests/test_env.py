"""The allocator setting of `bench` processes: freed tensor memory is reused, not re-faulted."""

import os
import platform
import subprocess
import sys

import pytest

# Allocates and frees a 64 MiB tensor 18 times, prints the minor page faults of the last 10
# (glibc settles its heap layout in the first few).
PROBE = """
import resource, sys, torch
from bench.core.env import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
def touch():
    torch.empty(16 << 20).fill_(1.0)
for _ in range(8):
    touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    touch()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES_PER_TENSOR = (64 << 20) // 4096


def probe(mode: str, env: dict | None = None) -> tuple[bool, int]:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                          check=True, env=env)
    applied, faults = done.stdout.split()
    return applied == "True", int(faults)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="the setting is glibc's")
def test_freed_blocks_are_reused_instead_of_faulted_in_again(monkeypatch):
    applied, kept = probe("keep")
    _, default = probe("default")
    assert applied
    assert default > 5 * PAGES_PER_TENSOR  # each fresh mapping faults its pages in
    assert kept < default / 2  # mostly the same heap pages (the layout may still settle)
    monkeypatch.setenv("FEWSHOT_BENCH_SYSTEM_MALLOC", "1")
    applied, faults = probe("keep", dict(os.environ))
    assert not applied and faults > 5 * PAGES_PER_TENSOR


def test_rows_name_the_commit_the_run_started_from(tmp_path, monkeypatch):
    """A run of hours writes its last rows after the checkout moved on: rows keep the commit
    that bench run recorded in its RunOptions at the start (they travel to Ray workers too)."""
    import numpy as np

    from bench.core import cells
    from bench.core.config import Cell, MethodSpec, TrainConfig

    monkeypatch.setattr(cells, "git_state", lambda: ("bbbb", True))
    trained = {"best_episode": 1, "train_seconds": 1.0}
    cell = Cell(MethodSpec("protonet"), "glyphs", (), 5, 1, 3, 10, 0, TrainConfig(episodes=1))
    options = cells.RunOptions(out_dir=tmp_path, code_state=("aaaa", False))
    row = cells.make_row(cell, np.ones(10), "hash", trained, 0.0, options)
    assert (row["commit"], row["dirty"]) == ("aaaa", False)
    row = cells.make_row(cell, np.ones(10), "hash", trained, 0.0,
                         cells.RunOptions(out_dir=tmp_path))
    assert (row["commit"], row["dirty"]) == ("bbbb", True)
