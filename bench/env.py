"""Where a number was measured: commit (and whether the tree was dirty), machine, versions."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


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
