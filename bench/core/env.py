"""Where a number was measured (commit, dirty tree, machine, versions), and the process's
memory allocator setting."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import socket
import subprocess
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the checkout (bench/core/env.py → the root)


@lru_cache(maxsize=1)
def git_state() -> tuple[str, bool]:
    """(commit, dirty) of the fewshot-bench checkout, ("unknown", False) outside git.

    FEWSHOT_BENCH_COMMIT overrides it for installed copies (e.g. a wheel run on another machine).
    """
    if os.environ.get("FEWSHOT_BENCH_COMMIT"):
        value = os.environ["FEWSHOT_BENCH_COMMIT"]
        return value.removesuffix("-dirty"), value.endswith("-dirty")
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        return commit, dirty
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str = "cpu") -> dict:
    """host, cpu, cores, threads, torch version and device, for results rows and perf files."""
    import torch

    info = {
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["device"] = f"{device} ({torch.cuda.get_device_name()})"
    return info


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# Blocks below this come from the heap and stay there when freed; larger ones are mapped afresh.
KEEP_FREED_BYTES = 1 << 30


@lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Let glibc's malloc reuse freed tensor memory instead of returning it to the system.

    By default glibc maps every block over 32 MiB afresh and unmaps it when freed, so a training
    step whose activations are larger (a 60-way 5-shot Omniglot batch holds 600 images of
    64×28×28 floats, 120 MB a layer) pays a page fault for every 4 KiB it touches, every step.
    Raising the mmap and trim thresholds to 1 GiB keeps such blocks in the heap for the next
    step. Measured on the 2-core Xeon (benchmarks/step_times.py, docs/perf.md): 60-way 5-shot
    ProtoNet steps 1.4–1.5× faster, kernel time 7.2–7.6 → 1.3–1.6 s of a ~20 s run. The cost:
    ~0.5 GB more peak memory there, which the process keeps until it exits.

    Linux with glibc only; FEWSHOT_BENCH_SYSTEM_MALLOC=1 leaves the allocator alone. Returns
    whether the setting was applied.
    """
    if os.environ.get("FEWSHOT_BENCH_SYSTEM_MALLOC") or platform.system() != "Linux":
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, KEEP_FREED_BYTES)
                    and libc.mallopt(_M_TRIM_THRESHOLD, KEEP_FREED_BYTES))
    except (OSError, AttributeError):
        return False
