"""Time and peak memory of the TRM head alone, each configuration in a fresh Python process.

The head runs on random feature maps [N, 64, h, w] (h·w = 49 is Conv-64F on 28×28 images, 441
on 84×84), with each normalisation of its weights (``normalize``: dual, the default, and row) and
in two phases: ``eval`` (eval mode, under ``no_grad``: cached evaluation) and ``train`` (train
mode, the head's forward and backward pass from a cross-entropy loss, gradients flowing into the
feature maps as they do into the backbone). Peak memory is measured around the first head call
only, after the inputs exist and after a tiny warm-up call, so it is what the head itself adds:

- CUDA: ``torch.cuda.max_memory_allocated`` after the call minus ``memory_allocated`` before;
- Linux CPU: the process's peak resident set (VmHWM), reset just before the call through
  /proc/self/clear_refs, minus the resident set (VmRSS) before it;
- other CPUs: ``ru_maxrss`` after the call minus ``ru_maxrss`` before it.

A fresh process per configuration keeps one configuration's freed memory or high-water mark from
hiding the next one's; a process killed by the system (out of memory) is reported, not raised.
"""

from __future__ import annotations

import itertools
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

CHILD = "from bench.perf.trm_head import child_main; child_main()"
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
    normalize: str = "dual"
    phase: str = "eval"


# A training step's attention costs about this many times its forward pass (forward, and a
# backward pass of about two and a half forward passes, weights recomputed).
TRAIN_FLOP_FACTOR = 3.5


def attention_flop(way: int, shot: int, query: int, hw: int, attn_dim: int = 64) -> float:
    """Multiply-adds ×2 of scores and weighted sum over all (query, class) pairs."""
    return 2 * 2 * (way * query) * way * hw * (shot * hw) * attn_dim


def head_cases(ways, shots, queries, hws, max_repeats: int, flop_budget: float,
               max_attn_mib: int, threads: int, device: str, normalizes=("dual", "row"),
               train_ways=(5,)) -> list[HeadCase]:
    """The grid: every normalisation in eval, and in training at ``train_ways``; each case
    repeats up to ``max_repeats`` times within ``flop_budget`` (≥ once)."""
    cases = []
    for way, shot, query, hw in itertools.product(ways, shots, queries, hws):
        phases = ("eval", "train") if way in train_ways else ("eval",)
        for phase, normalize in itertools.product(phases, normalizes):
            flop = attention_flop(way, shot, query, hw) * (TRAIN_FLOP_FACTOR
                                                           if phase == "train" else 1)
            repeats = max(1, min(max_repeats, int(flop_budget // flop)))
            cases.append(HeadCase(way, shot, query, hw, repeats, max_attn_mib, threads,
                                  device, normalize=normalize, phase=phase))
    return cases


def measure(case: HeadCase) -> dict:
    """Row ``way, shot, query, hw, ms, peak_mib`` (+ bound and details) of one case, measured in
    a child process."""
    row = {"way": case.way, "shot": case.shot, "query": case.query, "hw": case.hw,
           "normalize": case.normalize, "phase": case.phase,
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
    training = case.phase == "train"
    config = trm.Config(max_attn_mib=case.max_attn_mib, normalize=case.normalize)
    model = trm(config, 1).to(device).train(training)
    side = math.isqrt(case.hw)
    shape = (FEATURE_CHANNELS, side, case.hw // side)
    support = torch.randn(case.way * case.shot, *shape, device=device, requires_grad=training)
    query = torch.randn(case.way * case.query, *shape, device=device, requires_grad=training)
    labels = torch.arange(case.way, device=device).repeat_interleave(case.shot)
    with torch.set_grad_enabled(training):
        step = HeadStep(model, support, labels, query, case.way, device)
        step(2)  # warm-up on a 2-way sub-episode
        meter = PeakMemory(device)
        seconds = [step()]
        peak_mib, source = meter.peak_mib()
        seconds += [step() for _ in range(case.repeats - 1)]
    chunk = model.query_chunk_size(case.hw, case.shot * case.hw, case.way)
    return {"ms": 1000 * statistics.median(seconds), "peak_mib": peak_mib,
            "query_chunk": min(chunk, case.way * case.query), "memory_source": source}


@dataclass
class HeadStep:
    """One timed head call: forward only, or (grad enabled) forward and backward of the
    cross-entropy of the query predictions."""

    model: object
    support: object
    labels: object
    query: object
    way: int
    device: object

    def __call__(self, way: int | None = None) -> float:
        import torch
        import torch.nn.functional as F

        way = way or self.way
        shots = len(self.support) // self.way
        support, labels = self.support[: way * shots], self.labels[: way * shots]
        query = self.query[: way] if way != self.way else self.query
        start = time.perf_counter()
        logits = self.model.head(support, labels, query, way)
        if torch.is_grad_enabled():
            targets = torch.arange(len(query), device=self.device) % way
            F.cross_entropy(logits, targets).backward()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
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
        log(f"trm head ({case.normalize}, {case.phase}): {case.way}-way {case.shot}-shot "
            f"{case.query}-query, HW={case.hw}, {case.repeats} call(s)")
        rows.append(measure(case))
    return rows
