"""What TRM's dual (row ⊙ column softmax) attention costs against the fused row softmax, and why.

Part 1 times the head (`TaskRelatedMetric.head`, 5-way, 15 queries, random Conv-64F maps) with
``normalize=row`` and ``normalize=dual``, in eval (no grad) and in training (forward + backward),
at HW 49 and 441, 1- and 5-shot, for several sizes of the dual path's cache blocks.
Part 2 times each operation the dual path is made of, in ns per attention weight, on one block
of weights (one query image × 5 classes at 84×84 5-shot), against the fused row kernel.
Process CPU time, one thread by default, so other load on the machine disturbs little; like
`bench`, it keeps freed memory in the process.

    python benchmarks/trm_dual_cost.py [--threads 1] [--blocks 1,4,32]
"""

from __future__ import annotations

import argparse
import statistics
import time

import bench.methods.trm as trm_module
import torch
import torch.nn.functional as F
from bench.methods import _attention
from bench.methods.trm import TaskRelatedMetric

from bench.core.env import keep_freed_memory


def cpu_ms(function, repeats: int) -> float:
    function()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        function()
        times.append(time.process_time() - start)
    return 1000 * statistics.median(times)


def head_call(model, support, labels, query, training: bool):
    def call():
        if training:
            model.zero_grad()
            F.cross_entropy(model.head(support, labels, query, 5),
                            torch.arange(len(query)) % 5).backward()
        else:
            with torch.no_grad():
                model.head(support, labels, query, 5)
    return call


def head_costs(blocks: list[int]) -> None:
    print("part 1: head ms (CPU time), dual / row in brackets")
    for hw, shot, phase in [(h, s, p) for p in ("eval", "train") for h in (49, 441)
                            for s in (1, 5)]:
        side, training = round(hw ** 0.5), phase == "train"
        support = torch.randn(5 * shot, 64, side, side, requires_grad=training)
        query = torch.randn(75, 64, side, side, requires_grad=training)
        labels = torch.arange(5).repeat_interleave(shot)
        repeats = 5 if hw == 49 else 1
        models = {}
        for normalize in ("row", "dual"):
            torch.manual_seed(0)
            models[normalize] = TaskRelatedMetric(TaskRelatedMetric.Config(normalize=normalize),
                                                  1).train(training)
        row = cpu_ms(head_call(models["row"], support, labels, query, training), repeats)
        line = f"  {phase:5} HW {hw:3} {shot}-shot: row {row:7.1f}"
        for block in blocks:
            trm_module.EXPLICIT_BLOCK_BYTES = block << 20
            dual = cpu_ms(head_call(models["dual"], support, labels, query, training), repeats)
            line += f" | dual, {block} MiB/thread {dual:7.1f} ({dual / row:.2f}×)"
        print(line, flush=True)


def operation_costs() -> None:
    classes, hw, keys = 5, 441, 5 * 441
    q = (torch.randn(1, hw, 64) / 8).expand(classes, -1, -1)
    k, v = torch.randn(classes, keys, 64), torch.randn(classes, keys, 64)
    scores, rows = _attention._row_softmax(q, k)
    weights = scores.numel()
    operations = {
        "fused row attention (scores, softmax, weighted sum)":
            lambda: F.scaled_dot_product_attention(q, k, v, scale=1.0),
        "scores q kᵀ (stored)": lambda: torch.bmm(q, k.transpose(1, 2)),
        "row softmax": lambda: scores.softmax(-1),
        "column softmax (strided axis)": lambda: scores.unflatten(1, (-1, hw)).softmax(-2),
        "factored column softmax (2 maxima, 1 matrix-vector)":
            lambda: _attention._column_factors(scores, rows, hw),
        "square of the row softmax": lambda: rows.square(),
        "weighted sum α v (stored α)": lambda: torch.bmm(rows, v),
        "dual forward, all of it": lambda: _attention._dual_forward(q, k, v, hw),
    }
    print(f"part 2: ns per attention weight, one block of {weights:,} weights "
          f"({4 * weights / 2**20:.0f} MiB)")
    for name, operation in operations.items():
        print(f"  {name:55} {1e6 * cpu_ms(operation, 5) / weights:5.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--blocks", default="1,2,4,32", help="dual block sizes, MiB per thread")
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    print(f"{torch.get_num_threads()} thread(s), torch {torch.__version__}")
    with torch.no_grad():
        operation_costs()
    head_costs([int(block) for block in args.blocks.split(",")])


if __name__ == "__main__":
    main()
