"""Training-step cost at miniImageNet's shape: every method, 5-way 1/5-shot 15-query, 84×84 RGB.

One row per (method, shot, precision): the median time of the harness's own ``train_step`` (the
function `bench run` trains with: forward under autocast where bf16, loss, backward, Adam step)
on random images, after untimed warm-up steps; the FLOP of one step counted by
``torch.utils.flop_counter`` (convolutions and matrix products, forward and backward; TRM's
attention through the math kernel, whose products the counter sees); and the rate that makes,
next to the rate of one 2048² matrix product at the same precision (``matmul_gflops``), the
ceiling a step could reach if every FLOP ran as fast as a large matrix product.

Random images cost the same as real ones (no data-dependent branches); the dataset's training
augmentation is left out (it is elementwise work the counter does not count; `bench run` on
mini-imagenet adds it, see docs/perf.md).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from bench.core.config import Cell, MethodSpec, TrainConfig
from bench.core.episodes import Episode
from bench.core.model import build_model
from bench.core.precision import native_bf16, resolve_precision
from bench.perf.evaluation import matmul_gflops, matmul_size
from bench.registry import METHODS
from bench.train.runner import make_optimizer, train_step

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Train84Plan:
    # (): every registered method with a training step (baseline, baselinepp pre-train instead)
    methods: tuple[str, ...] = ()
    way: int = 5
    shots: tuple[int, ...] = (1, 5)
    query: int = 15
    size: int = 84
    channels: int = 3
    precisions: tuple[str, ...] = ("fp32", "bf16")  # "auto": what `bench run` would use
    warmup: int = 2
    steps: int = 5
    seed: int = 0


def matmul_rates(device: torch.device) -> dict[str, float]:
    """GFLOP/s of a 2048² matrix product in fp32 and in bf16 on ``device``; a precision whose
    2048² product would take over a second is measured at the largest power-of-two size whose
    product does not, by a 512² probe (``size_<precision>``: 512 for emulated bf16 on an AVX2-only
    CPU)."""
    rates = {}
    for name, dtype in DTYPES.items():
        size = matmul_size(device, dtype)
        rates[name] = round(matmul_gflops(device, size, dtype=dtype), 1)
        rates[f"size_{name}"] = size
    return rates


def synthetic_episode(plan: Train84Plan, shot: int) -> tuple[torch.Tensor, Episode]:
    """Random uint8 images of one episode (support rows, then query rows) and its Episode."""
    generator = torch.Generator().manual_seed(plan.seed)
    count = plan.way * (shot + plan.query)
    pixels = torch.randint(0, 256, (count, plan.channels, plan.size, plan.size),
                           dtype=torch.uint8, generator=generator)
    support = torch.arange(plan.way * shot).view(plan.way, shot)
    query = torch.arange(plan.way * shot, count).view(plan.way, plan.query)
    return pixels, Episode(support, query)


def step_gflop(step) -> float:
    """GFLOP of one call of ``step``, attention counted through the math kernel."""
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        step()
    return counter.get_total_flops() / 1e9


def timed_steps(step, count: int, device: torch.device) -> list[float]:
    """Milliseconds of each of ``count`` calls of ``step``."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return times


def case_row(method: str, shot: int, precision: str, plan: Train84Plan, device: torch.device,
             rates: dict[str, float]) -> dict:
    torch.manual_seed(plan.seed)
    cell = Cell(MethodSpec(method), "random", (), plan.way, shot, plan.query, 1, plan.seed,
                TrainConfig(query=plan.query, precision=precision))
    model = build_model(cell, plan.channels, n_base_classes=64, image_size=plan.size).to(device)
    optimizer, scheduler = make_optimizer(model, cell)
    pixels, episode = synthetic_episode(plan, shot)
    pixels = pixels.to(device)

    def step():
        train_step(model, optimizer, scheduler, pixels, episode, device, None, precision)

    timed_steps(step, plan.warmup, device)
    times = timed_steps(step, plan.steps, device)
    gflop = step_gflop(step)
    ms = statistics.median(times)
    gflops = gflop / (ms / 1000)
    return {"method": method, "shot": shot, "precision": precision,
            "image_size": f"{plan.size}×{plan.size}", "ms_per_step": round(ms, 1),
            "gflop_per_step": round(gflop, 4), "gflops": round(gflops, 1),
            "matmul_gflops": rates[precision],
            "fraction_of_matmul": round(gflops / rates[precision], 3),
            "way": plan.way, "query": plan.query, "backbone": model.config.backbone,
            "steps": plan.steps, "min_ms": round(min(times), 1), "max_ms": round(max(times), 1),
            "matmul_fp32_gflops": rates["fp32"], "matmul_bf16_gflops": rates["bf16"],
            "matmul_bf16_size": rates["size_bf16"],
            "bf16_native": native_bf16(str(device))}


def train84_rows(plan: Train84Plan, device: torch.device, log=lambda message: None) -> list[dict]:
    """Rows ``method, shot, precision, image_size, ms_per_step, gflop_per_step, gflops,
    matmul_gflops`` (+ details) for every method, shot and precision of the plan."""
    rates = matmul_rates(device)
    log(f"matmul: fp32 {rates['fp32']} GFLOP/s ({rates['size_fp32']}²), bf16 {rates['bf16']} "
        f"GFLOP/s ({rates['size_bf16']}²; bf16 native: {native_bf16(str(device))})")
    precisions = list(dict.fromkeys(resolve_precision(p, str(device)) for p in plan.precisions))
    for precision in [p for p in precisions if too_slow(p, rates)]:
        log(f"{precision} steps skipped: its matmul runs at {rates[precision]} GFLOP/s, "
            f"under 1/{EMULATED_SLOWDOWN} of fp32's {rates['fp32']} (emulated here)")
        precisions.remove(precision)
    rows = []
    for precision in precisions:
        for method in plan.methods or episodic_methods():
            for shot in plan.shots:
                log(f"train step {method} {plan.way}-way {shot}-shot {plan.size}×{plan.size} "
                    f"{precision}")
                rows.append(case_row(method, shot, precision, plan, device, rates))
    return rows


# A precision whose matmul runs this many times slower than fp32 is emulated in software (seen:
# bf16 at 0.32 GFLOP/s against fp32's 86 on an AVX2-only EPYC, 268×): timing every method's
# steps in it would take hours and say only that. An AVX-512 Xeon without BF16 (33 against
# 142, 4.3×) is still timed: there bf16 training was 1.5–2.3× slower, worth a row.
EMULATED_SLOWDOWN = 16


def too_slow(precision: str, rates: dict[str, float]) -> bool:
    """Whether ``precision``'s matmul rate is under 1/EMULATED_SLOWDOWN of fp32's."""
    return precision != "fp32" and rates[precision] * EMULATED_SLOWDOWN < rates["fp32"]


def episodic_methods() -> tuple[str, ...]:
    """Every registered method that trains on episodes (baseline/baselinepp only pre-train)."""
    return tuple(name for name in METHODS.names() if METHODS.get(name).episodic)


TRM_OVER_PROTONET = 3.0  # the goal: trm's 5-shot step costs at most 3× protonet's
MATMUL_FRACTION = 0.7  # the goal: every step at ≥ 70% of the matmul rate at its precision


def train84_checks(frame):
    """The training-step goals on train84 rows: rate against the matmul rate, trm against
    protonet."""
    for row in frame.itertuples():
        yield {"check": f"train84 step GFLOP/s ÷ matmul, {row.method} {row.shot}-shot "
                        f"{row.precision}", "value": row.fraction_of_matmul,
               "required": f"≥ {MATMUL_FRACTION}",
               "passed": bool(row.fraction_of_matmul >= MATMUL_FRACTION)}
    for precision, group in frame.groupby("precision", sort=False):
        times = group[group["shot"] == group["shot"].max()].set_index("method")["ms_per_step"]
        if {"trm", "protonet"} <= set(times.index):
            ratio = round(float(times["trm"] / times["protonet"]), 2)
            yield {"check": f"train84 step time trm ÷ protonet, {group['shot'].max()}-shot "
                            f"{precision}", "value": ratio, "required": f"≤ {TRM_OVER_PROTONET}",
                   "passed": bool(ratio <= TRM_OVER_PROTONET)}
