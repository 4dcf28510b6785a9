"""Pairing two methods' results in one table cell: episode by episode within one training run,
and seed by seed over runs (each seed's two runs tested on identical episodes).

Pairing. Two methods are paired seed by seed: seed s of both must carry the same set of
``episodes_hash`` values (``bench run --test-seed`` tests every seed on one episode set, but pairing
needs only that each seed's two runs share theirs). With ≥ 2 such seeds the comparison is at the
seed level (``level`` = "seeds": per-seed differences, their mean ± t-CI, the paired t-test over
seeds, the exact sign-flip test, the share of seeds where the reference is ahead); with one it is
the episode-level paired test of that one run (``level`` = "episodes", "within one training run").
Seeds that one method has and the other lacks are left out and named. Holm's correction runs over
all comparisons that one ``compare`` call makes (every other method × every cell).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bench.errors import BenchError
from bench.report.rows import cell_label, cell_rows
from bench.results import per_episode_path

ALPHA = 0.05


class EpisodesMismatch(BenchError):
    """Two methods' results were measured on different episodes and cannot be paired."""


def episodes_by_hash(rows, method: str, key) -> dict:
    by_hash = {}
    for _, row in rows.iterrows():
        if row["episodes"] is None:
            raise EpisodesMismatch(f"{method} in {cell_label(key)} has no per-episode accuracies "
                                   f"({per_episode_path(row['source_dir'], row['cell_id'])} is "
                                   "missing)")
        if row["episodes_hash"] in by_hash:
            raise BenchError(f"{method} has two results on the same episodes in {cell_label(key)} "
                             f"(episodes_hash {row['episodes_hash']}); pass each run once")
        by_hash[row["episodes_hash"]] = row["episodes"]
    return by_hash


def paired_episodes(frame, key, other: str) -> tuple[np.ndarray, np.ndarray]:
    """Episode-aligned accuracies (percent) of ``key['method']`` and ``other`` in ``key``'s cell.

    ``frame`` needs the ``episodes`` column (``with_episodes``). Raises EpisodesMismatch when the
    two methods were not measured on the same set of episodes.
    """
    method = key["method"]
    mine = episodes_by_hash(cell_rows(frame, key, method, key.get("backbone")), method, key)
    theirs = episodes_by_hash(cell_rows(frame, key, other), other, key)
    if not theirs:
        raise EpisodesMismatch(f"{other} has no result in {cell_label(key)}")
    if set(mine) != set(theirs):
        raise EpisodesMismatch(
            f"{method} and {other} in {cell_label(key)} were measured on different episodes "
            f"(episodes_hash {', '.join(sorted(mine))} vs {', '.join(sorted(theirs))}); "
            "re-run them with the same seeds, episodes and queries to pair them")
    hashes = sorted(mine)
    a = np.concatenate([mine[h] for h in hashes]) * 100.0
    b = np.concatenate([theirs[h] for h in hashes]) * 100.0
    if a.shape != b.shape:
        raise EpisodesMismatch(f"{method} and {other} in {cell_label(key)} have different "
                               f"episode counts ({a.size} vs {b.size}) under the same hashes")
    return a, b


@dataclass
class SeedPairing:
    """Seed-by-seed pairing of two methods in one cell: the seeds whose two runs were tested on
    identical episodes, their per-seed accuracies (percent) and episodes, and what was left out."""

    seeds: list
    a_values: list
    b_values: list
    a_episodes: list
    b_episodes: list
    left_out: list  # "seed 3: protonet has no run", "seed 4: different episodes", ...
    hashes: set = field(default_factory=set)  # the episode sets (hash tuples) of paired seeds


def _by_seed(rows, method: str, key) -> dict:
    """{seed: {episodes_hash: episodes or None}} of one method's rows in a cell."""
    by_seed = {}
    for _, row in rows.iterrows():
        hashes = by_seed.setdefault(int(row["seed"]), {})
        if row["episodes_hash"] in hashes:
            raise BenchError(f"{method} has two results of seed {row['seed']} on the same "
                             f"episodes in {cell_label(key)} (episodes_hash "
                             f"{row['episodes_hash']}); pass each run once")
        hashes[row["episodes_hash"]] = row["episodes"]
    return by_seed


def seed_pairing(frame, key, other: str, other_backbone: str | None = None) -> SeedPairing:
    """Pair ``key['method']`` (on ``key['backbone']``) and ``other`` (on ``other_backbone``, or
    any) in ``key``'s cell seed by seed (``frame`` needs the ``episodes`` column). A seed pairs
    when both methods have it, on the same episodes_hash set, with per-episode files."""
    method = key["method"]
    mine = _by_seed(cell_rows(frame, key, method, key.get("backbone")), method, key)
    theirs = _by_seed(cell_rows(frame, key, other, other_backbone), other, key)
    pairing = SeedPairing([], [], [], [], [], [])
    for seed in sorted(set(mine) | set(theirs)):
        if seed not in theirs or seed not in mine:
            lacking = other if seed not in theirs else method
            pairing.left_out.append(f"seed {seed}: {lacking} has no run")
            continue
        if set(mine[seed]) != set(theirs[seed]):
            pairing.left_out.append(f"seed {seed}: different test episodes")
            continue
        hashes = sorted(mine[seed])
        if any(mine[seed][h] is None or theirs[seed][h] is None for h in hashes):
            pairing.left_out.append(f"seed {seed}: per-episode files missing")
            continue
        a = np.concatenate([mine[seed][h] for h in hashes]) * 100.0
        b = np.concatenate([theirs[seed][h] for h in hashes]) * 100.0
        if a.shape != b.shape:
            pairing.left_out.append(f"seed {seed}: different episode counts")
            continue
        pairing.seeds.append(seed)
        pairing.hashes.add(tuple(hashes))
        pairing.a_values.append(float(a.mean()))
        pairing.b_values.append(float(b.mean()))
        pairing.a_episodes.append(a)
        pairing.b_episodes.append(b)
    return pairing
