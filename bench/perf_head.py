"""Time and peak memory of the TRM head alone, each configuration in a fresh Python process.

The head runs in eval mode under ``no_grad`` on random feature maps [N, 64, h, w] (h·w = 49 is
Conv-64F on 28×28 images, 441 on 84×84). Peak memory is measured around the first head call
only, after the inputs exist and after a tiny warm-up call, so it is what the head itself adds:

- CUDA: ``torch.cuda.max_memory_allocated`` after the call minus ``memory_allocated`` before;
- Linux CPU: the process's peak resident set (VmHWM), reset just before the call through
  /proc/self/clear_refs, minus the resident set (VmRSS) before it;
- other CPUs: ``ru_maxrss`` after the call minus ``ru_maxrss`` before it.

A fresh process per configuration keeps one configuration's freed memory or high-water mark from
hiding the next one's; a process killed by the system (out of memory) is reported, not raised.
"""

from __future__ import annotations

import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

CHILD = "from bench.perf_head import child_main; child_main()"
FEATURE_CHANNELS = 64
CHILD_TIMEOUT_S = 1800


@dataclass(frozen=True)
class HeadCase:
    way: int
    shot: int
    query: int
    hw: int
    repeats: int
    max_attn_mib: int
    threads: int
    device: str = "cpu"
    seed: int = 0


def attention_flop(way: int, shot: int, query: int, hw: int, attn_dim: int = 64) -> float:
    """Multiply-adds ×2 of scores and weighted sum over all (query, class) pairs."""
    return 2 * 2 * (way * query) * way * hw * (shot * hw) * attn_dim


def head_cases(ways, shots, queries, hws, max_repeats: int, flop_budget: float,
               max_attn_mib: int, threads: int, device: str) -> list[HeadCase]:
    """The grid; each case repeats up to ``max_repeats`` times within ``flop_budget`` (≥ once)."""
    cases = []
    for way in ways:
        for shot in shots:
            for query in queries:
                for hw in hws:
                    fits = int(flop_budget // attention_flop(way, shot, query, hw))
                    cases.append(HeadCase(way, shot, query, hw, max(1, min(max_repeats, fits)),
                                          max_attn_mib, threads, device))
    return cases


def measure(case: HeadCase) -> dict:
    """Row ``way, shot, query, hw, ms, peak_mib`` (+ bound and details) of one case, measured in
    a child process."""
    row = {"way": case.way, "shot": case.shot, "query": case.query, "hw": case.hw,
           "ms": math.nan, "peak_mib": math.nan, "bound_mib": case.max_attn_mib,
           "within_bound": False, "repeats": case.repeats, "query_chunk": None,
           "memory_source": None, "status": "ok"}
    try:
        done = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(asdict(case)),
                              capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
                              check=False, cwd=tempfile.gettempdir())  # not the repo root
    except subprocess.TimeoutExpired:
        return {**row, "status": f"timeout after {CHILD_TIMEOUT_S} s"}
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no message"])[-1]
        killed = done.returncode < 0 or done.returncode == 137
        return {**row, "status": "killed (out of memory?)" if killed else f"failed: {tail}"}
    row.update(json.loads(done.stdout.strip().splitlines()[-1]))
    row["within_bound"] = bool(row["peak_mib"] <= case.max_attn_mib)
    return row


def child_main() -> None:
    """Entry of the child process: a HeadCase as JSON on stdin, one JSON line on stdout."""
    case = HeadCase(**json.loads(sys.stdin.read()))
    print(json.dumps(run_case(case)))


def run_case(case: HeadCase) -> dict:
    import torch

    from bench.registry import METHODS

    torch.set_num_threads(case.threads)
    torch.manual_seed(case.seed)
    device = torch.device(case.device)
    trm = METHODS.get("trm")
    model = trm(trm.Config(max_attn_mib=case.max_attn_mib), 1).to(device).eval()
    side = math.isqrt(case.hw)
    shape = (FEATURE_CHANNELS, side, case.hw // side)
    support = torch.randn(case.way * case.shot, *shape, device=device)
    query = torch.randn(case.way * case.query, *shape, device=device)
    labels = torch.arange(case.way, device=device).repeat_interleave(case.shot)
    with torch.no_grad():
        model.head(support[: 2 * case.shot], labels[: 2 * case.shot], query[:1], 2)  # warm-up
        meter = PeakMemory(device)
        seconds = [timed_head(model, support, labels, query, case.way, device)]
        peak_mib, source = meter.peak_mib()
        seconds += [timed_head(model, support, labels, query, case.way, device)
                    for _ in range(case.repeats - 1)]
    chunk = model.query_chunk_size(case.hw, case.shot * case.hw, case.way)
    return {"ms": 1000 * statistics.median(seconds), "peak_mib": peak_mib,
            "query_chunk": min(chunk, case.way * case.query), "memory_source": source}


def timed_head(model, support, labels, query, way: int, device) -> float:
    import torch

    start = time.perf_counter()
    model.head(support, labels, query, way)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


class PeakMemory:
    """The peak memory added between its creation and ``peak_mib()`` (see the module docstring)."""

    STATUS = Path("/proc/self/status")

    def __init__(self, device):
        import torch

        self.device = device
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            self.source, self.before = "cuda-allocator", torch.cuda.memory_allocated(device)
        elif self._reset_high_water_mark():
            self.source, self.before = "rss-hwm", self._status_kib("VmRSS") * 1024
        else:
            self.source, self.before = "ru_maxrss", self._max_rss_bytes()

    def peak_mib(self) -> tuple[float, str]:
        import torch

        if self.source == "cuda-allocator":
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self.source == "rss-hwm":
            peak = self._status_kib("VmHWM") * 1024
        else:
            peak = self._max_rss_bytes()
        return max(0, peak - self.before) / 2**20, self.source

    def _reset_high_water_mark(self) -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            return self._status_kib("VmHWM") > 0
        except OSError:
            return False

    def _status_kib(self, key: str) -> int:
        for line in self.STATUS.read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
        return 0

    @staticmethod
    def _max_rss_bytes() -> int:
        usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return usage if sys.platform == "darwin" else usage * 1024


def head_rows(cases: list[HeadCase], log=lambda message: None) -> list[dict]:
    rows = []
    for case in cases:
        log(f"trm head: {case.way}-way {case.shot}-shot {case.query}-query, HW={case.hw}, "
            f"{case.repeats} call(s)")
        rows.append(measure(case))
    return rows
