"""Evaluation throughput: cached embeddings against re-embedding every episode, same episodes.

For each method and shot the fixed test episodes of each count are drawn first (not timed). The
cached rate times the whole ``evaluate(mode="cached")`` call, so it includes the one-time
embedding of every test image the episodes use. The per-episode rate re-embeds each episode's
images; it does not depend on the count, so it is measured on the first few episodes of the
shortest list (after untimed warm-up episodes of both modes, so that the first method timed does
not pay for thread pools and kernel set-up; a timing under a second is repeated on the same
episodes and summed, ``timed_passes``), and those episodes' accuracies are compared, one by one,
with the cached ones. ``load_avg`` is the 1-minute load average around the timing; ``loaded``
says it exceeded the thread count, when the rates are not a speed figure.

Each row also carries the floating-point operations of one episode, counted by
``torch.utils.flop_counter`` on the first test episode (it counts convolutions and matrix
products, not elementwise work, reductions or ``cdist``): ``embed_gflop`` (embedding its images,
which per-episode evaluation pays every episode and cached evaluation pays once per test image)
and ``head_gflop`` (the method's head, which both pay every episode), and ``embedded_images``
says how many images the row's evaluation embedded. From them and the two measured rates,
``bench.perf.suite.flop_account`` says what the speed-up is made of.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from bench.core.config import Cell, MethodSpec, TrainConfig
from bench.core.episodes import EpisodeList, EpisodeSampler, fixed_episodes
from bench.core.model import build_model, data_shape, to_float
from bench.data import ImageSet
from bench.evaluate.episodic import evaluate
from bench.registry import METHODS
from bench.train.runner import TrainState, make_optimizer, train

WARMUP_EPISODES = 5  # untimed episodes of each mode before a method's timing
MIN_TIMED_SECONDS = 1.0  # per-episode timings shorter than this are repeated and summed


@dataclass(frozen=True)
class EvalPlan:
    way: int = 5
    shots: tuple[int, ...] = (1, 5)
    query: int = 15
    counts: tuple[int, ...] = (600, 10_000)  # cached evaluations, one row each
    per_episode: int = 600  # episodes re-embedded one by one (the first of the shortest list)
    train_episodes: int = 100  # 5-way 1-shot training of each model before it is timed (0: none)
    seed: int = 0


def trained_model(spec: MethodSpec, train_set: ImageSet, channels: int, plan: EvalPlan,
                  device: torch.device) -> torch.nn.Module:
    """The method's model after ``plan.train_episodes`` episodes of training (its accuracy only
    has to be the same in both modes, so a short run is enough)."""
    torch.manual_seed(plan.seed)
    # methods without episodic training (baseline, baselinepp) are timed untrained
    episodes = plan.train_episodes if METHODS.get(spec.name).episodic else 0
    cell = Cell(spec, train_set.name.split("/")[0], (), plan.way, 1, plan.query, 1, plan.seed,
                TrainConfig(episodes=episodes, query=plan.query, val_every=0,
                            checkpoint_every=0))
    model = build_model(cell, channels, **data_shape(train_set)).to(device)
    if episodes:
        optimizer, scheduler = make_optimizer(model, cell)
        sampler = EpisodeSampler(train_set, plan.way, 1, plan.query, plan.seed)
        train(model, optimizer, scheduler, sampler, train_set, TrainState(), cell, device)
    return model.eval()


def first(episodes: EpisodeList, count: int) -> EpisodeList:
    return replace(episodes, support=episodes.support[:count], query=episodes.query[:count],
                   hash=f"{episodes.hash}[:{count}]")


def same_prefix(a: EpisodeList, b: EpisodeList, count: int) -> bool:
    return (torch.equal(a.support[:count], b.support[:count])
            and torch.equal(a.query[:count], b.query[:count]))


def timed_evaluate(model, test_set: ImageSet, episodes: EpisodeList, device: torch.device,
                   mode: str) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    accuracies = evaluate(model, test_set, episodes, device, mode=mode)
    return accuracies, time.perf_counter() - start


@torch.no_grad()
def episode_gflop(model, test_set: ImageSet, episodes: EpisodeList,
                  device: torch.device) -> tuple[float, float]:
    """GFLOP of embedding the first episode's images and of running the head on them.

    The head is counted with the math attention kernel, whose matrix products the counter
    sees (it has no formula for the CPU's fused kernel); the products are the same.
    """
    episode = episodes[0]
    batch = to_float(test_set.images[episode.indices()], device)
    with FlopCounterMode(display=False) as embedding:
        features = model.embed(batch)
    n_support = episode.support.numel()
    with FlopCounterMode(display=False) as head, sdpa_kernel(SDPBackend.MATH):
        model.head(features[:n_support], episode.support_labels().to(device),
                   features[n_support:], episode.way)
    return embedding.get_total_flops() / 1e9, head.get_total_flops() / 1e9


def method_rows(label: str, model, test_set: ImageSet, dataset: str, shot: int, plan: EvalPlan,
                device: torch.device, log=lambda message: None) -> list[dict]:
    """One per-episode row and one cached row per count, for one method and shot."""
    lists = {count: fixed_episodes(test_set, plan.way, shot, plan.query, count, plan.seed)
             for count in plan.counts}
    shortest = lists[min(plan.counts)]
    compared = min(plan.per_episode, len(shortest))
    log(f"{label} {plan.way}-way {shot}-shot: per-episode, {compared} episodes")
    # Warm-up, untimed: thread pools, kernel set-up and allocator caches of both modes, so the
    # first method timed in the process does not pay for them.
    evaluate(model, test_set, first(shortest, WARMUP_EPISODES), device, mode="per-episode")
    evaluate(model, test_set, first(shortest, WARMUP_EPISODES), device, mode="cached")
    load_before = os.getloadavg()[0]
    reference, seconds = timed_evaluate(model, test_set, first(shortest, compared), device,
                                        "per-episode")
    passes = 1
    while seconds < MIN_TIMED_SECONDS and passes < 1000:  # too short to trust: time the same
        seconds += timed_evaluate(model, test_set, first(shortest, compared), device,  # episodes
                                  "per-episode")[1]  # again, and sum
        passes += 1
    embed_gflop, head_gflop = episode_gflop(model, test_set, shortest, device)
    details = {"way": plan.way, "shot": shot, "query": plan.query,
               "trained_episodes": plan.train_episodes, "compared_episodes": compared,
               "embed_gflop": round(embed_gflop, 4), "head_gflop": round(head_gflop, 4)}

    def row(mode: str, accuracies: np.ndarray, seconds: float, episodes_hash: str,
            passes: int = 1) -> dict:
        return {"method": label, "dataset": dataset, "mode": mode, "episodes": len(accuracies),
                "episodes_per_s": passes * len(accuracies) / seconds,
                "acc": float(accuracies.mean()), **details, "seconds": seconds,
                "timed_passes": passes, "episodes_hash": episodes_hash}

    rows = [row("per-episode", reference, seconds, f"{shortest.hash}[:{compared}]", passes)]
    rows[0]["embedded_images"] = compared * plan.way * (shot + plan.query)
    for count in plan.counts:
        log(f"{label} {plan.way}-way {shot}-shot: cached, {count} episodes")
        accuracies, seconds = timed_evaluate(model, test_set, lists[count], device, "cached")
        rows.append(row("cached", accuracies, seconds, lists[count].hash))
        rows[-1]["embedded_images"] = len(lists[count].used_images())
        rows[-1]["acc_matches"] = same_prefix(lists[count], shortest, compared) and bool(
            np.array_equal(accuracies[:compared], reference))
    rows[0]["acc_matches"] = all(row["acc_matches"] for row in rows[1:])
    load = max(load_before, os.getloadavg()[0])  # 1-minute load average around the timing
    for timed in rows:
        timed["load_avg"] = round(load, 2)
        timed["loaded"] = load > torch.get_num_threads()
    return rows


def matmul_size(device: torch.device, dtype: torch.dtype, size: int = 2048,
                max_seconds: float = 1.0, probe: int = 512) -> int:
    """``size``, halved while one ``size``² product would take over ``max_seconds`` at the rate
    a ``probe``² product shows (never below ``probe``): a dtype the machine only emulates
    (bf16 at 0.32 GFLOP/s on an AVX2-only CPU: 54 s a 2048² product) is measured smaller."""
    rate = matmul_gflops(device, probe, repeats=1, dtype=dtype)
    while size > probe and 2 * size**3 / (rate * 1e9) > max_seconds:
        size //= 2
    return size


def matmul_gflops(device: torch.device, size: int = 2048, repeats: int = 5,
                  dtype: torch.dtype = torch.float32) -> float:
    """GFLOP/s of one ``size``² matrix product on ``device`` (median of ``repeats``, after a
    warm-up): what this machine's matrix products reach, to read the head's rate against."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    times = []
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times[1:]) / 1e9


def eval_rows(specs: list[MethodSpec], train_set: ImageSet, test_set: ImageSet, channels: int,
              dataset: str, plan: EvalPlan, device: torch.device,
              log=lambda message: None) -> list[dict]:
    """Rows ``method, dataset, mode, episodes, episodes_per_s, acc`` (+ details) for every
    method and shot of the plan."""
    peak = round(matmul_gflops(device), 1)
    rows = []
    for spec in specs:
        log(f"{spec.label}: training {plan.train_episodes} episodes before timing")
        model = trained_model(spec, train_set, channels, plan, device)
        for shot in plan.shots:
            rows += method_rows(spec.label, model, test_set, dataset, shot, plan, device, log)
    return [{**row, "matmul_gflops": peak} for row in rows]
