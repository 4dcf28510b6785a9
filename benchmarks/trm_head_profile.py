"""Where the TRM head's time goes on this machine (5-way 5-shot 15-query, Conv-64F maps 64×7×7).

Usage: python benchmarks/trm_head_profile.py
Prints the head's time in fp32 and under bfloat16 autocast, the `torch.profiler` table of one
fp32 run (the flash-attention kernel dominates), and the fp32 / bf16 speed of the score product
alone as a batched matmul, which bounds what any exact fp32 rewrite of the head can gain.
"""

from __future__ import annotations

import time

import torch
from bench.methods.trm import TaskRelatedMetric
from torch.profiler import ProfilerActivity, profile


def milliseconds(function, repeats: int = 20) -> float:
    for _ in range(3):
        function()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    torch.manual_seed(0)
    model = TaskRelatedMetric(TaskRelatedMetric.Config(), 1).eval()
    support, query = torch.randn(25, 64, 7, 7), torch.randn(75, 64, 7, 7)
    labels = torch.arange(5).repeat_interleave(5)
    with torch.no_grad():
        for precision in ("fp32", "bf16"):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                ms = milliseconds(lambda: model.head(support, labels, query, 5))
            print(f"head, {precision}: {ms:.2f} ms")
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            for _ in range(20):
                model.head(support, labels, query, 5)
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=6))
    q, k = torch.randn(5, 3675, 64), torch.randn(5, 245, 64)  # 75 queries × 49 positions, 5 × 245
    flop = 2 * q.shape[0] * q.shape[1] * k.shape[1] * q.shape[2]
    for dtype in (torch.float32, torch.bfloat16):
        a, b = q.to(dtype), k.to(dtype).transpose(1, 2)
        ms = milliseconds(lambda: torch.bmm(a, b))
        print(f"score product as bmm, {dtype}: {ms:.2f} ms, {flop / ms / 1e6:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
