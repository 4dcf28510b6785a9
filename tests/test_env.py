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
from bench.env import keep_freed_memory
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


def test_rows_name_the_commit_the_run_started_from(monkeypatch):
    """A run of hours writes its last rows after the checkout moved on: the rows keep the
    commit recorded at the start (bench run calls record_code_state first)."""
    from bench import env

    monkeypatch.setattr(env, "_AT_START", None)
    monkeypatch.setattr(env, "git_state", lambda: ("aaaa", False))
    assert env.code_state() == ("aaaa", False)
    env.record_code_state()
    monkeypatch.setattr(env, "git_state", lambda: ("bbbb", True))
    assert env.code_state() == ("aaaa", False)
