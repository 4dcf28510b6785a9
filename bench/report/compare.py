"""`bench report --compare`: one method against every other, in every table cell, paired seed by
seed over training runs where they share ≥ 2 seeds, else episode by episode within one run; Holm's
correction over each family; a plain-words verdict per row (docs/statistics.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bench import stats
from bench.errors import BenchError
from bench.report.pairing import ALPHA, EpisodesMismatch, paired_episodes, seed_pairing
from bench.report.rows import CELL_KEYS, GROUP_KEYS, cell_label, cell_rows, with_episodes


class NothingToCompare(BenchError):
    """No pair of results could be compared; ``refused`` says why for each."""

    def __init__(self, message: str, refused: list[str]):
        super().__init__(message)
        self.refused = refused


def _tables_without(frame, reference: str) -> list[str]:
    """Why tables (dataset, split, way) lacking a ``reference`` row have no comparison."""
    notes = []
    for key, group in frame.groupby(GROUP_KEYS, sort=True):
        labels = sorted(group["method"].unique())
        if reference in labels:
            continue
        where = f"{key[0]} {key[2]}-way" + (f" ({key[1]})" if key[1] else "")
        variants = [label for label in labels if label.startswith(f"{reference} [")]
        if variants:
            notes.append(f"{where}: its {reference} rows are different experiments, labelled "
                         f"{', '.join(variants)}; pass one of these labels to --compare")
        else:
            notes.append(f"{where}: no {reference} result (methods there: {', '.join(labels)})")
    return notes


@dataclass
class Comparison:
    """Paired comparisons against one reference method: a table and the refused pairs."""

    reference: str
    table: object  # pandas.DataFrame, one row per (cell, other method)
    refused: list[str]
    power_delta: float | None = None  # --power: the difference (points) seeds_needed is for
    partial: list[str] = field(default_factory=list)  # pairs compared on some of their seeds


def verdict(row) -> str:
    """The plain-words reading of one comparison row (reference − method)."""
    if row["level"] != "seeds":  # nothing is established over runs by one run
        within = row["t_p_holm"] < ALPHA
        side = "ahead" if row["diff"] > 0 else "behind"
        return f"one run only: {side}" if within else "one run only: level"
    if row["t_p_holm"] < ALPHA:
        return "ahead" if row["diff"] > 0 else "behind"
    return "not established"


def compare(frame, reference: str, against=None, ci_method: str = "normal",
            strict: bool = True, power: float | None = None) -> Comparison:
    """Every other method (or those in ``against``) vs ``reference`` in every cell they share.

    Columns: the cell keys, ``method`` (the other one), ``level`` ("seeds" with ≥ 2 paired seeds,
    else "episodes": one training run), ``seeds`` (S), ``seed_list``, ``diff`` (reference − method,
    points: the mean of the per-seed differences, or of the episodes at one run), ``ci95`` (over
    seeds, or over episodes), ``t_p`` (paired t over seeds, or over episodes), ``signflip_p``
    (exact, seeds only), ``wins`` (share of seeds where the reference is ahead), ``diff_sd``
    (between-run SD of the differences), ``seed_diffs``, the episode-level ``episode_diff``,
    ``episode_ci95``, ``episode_t_p``, ``wilcoxon_p`` over all paired episodes, ``n`` (paired
    episodes), Holm-adjusted ``t_p_holm``/``signflip_p_holm``/``wilcoxon_p_holm``, ``verdict``,
    and with ``power`` (points) ``seeds_needed`` for 80% power at α = 0.05.
    Raises BenchError if the reference is unknown, NothingToCompare if nothing could be paired
    (unless not ``strict``: then the table is empty). ``refused`` also names every table without
    a ``reference`` row and the cells where a method of ``against`` has no row; ``partial`` the
    pairs compared on some of their seeds, and which seeds were left out.
    """
    import pandas as pd

    stats.check_ci_method(ci_method)
    if power is not None and not (np.isfinite(power) and power > 0):
        raise BenchError(f"--power must be a positive number of points, got {power}; write e.g. "
                         "--power 1.0")
    frame = with_episodes(frame)
    methods = sorted(frame["method"].unique())
    for name in [reference, *(against or [])]:
        if name not in methods:
            raise BenchError(f"method {name!r} is not in the results; methods: "
                             f"{', '.join(methods)}")
    others = [m for m in (against or methods) if m != reference]
    rows, refused, partial = [], _tables_without(frame, reference), []
    reference_cells = frame[frame["method"] == reference]
    for key, _ in reference_cells.groupby(CELL_KEYS, sort=True):
        key = dict(zip(CELL_KEYS, key))
        for other in others:
            backbones = sorted(set(cell_rows(frame, key, other)["backbone"]))
            if not backbones:
                if against:
                    refused.append(f"{other} has no result in {cell_label(key)}")
                continue
            for backbone in backbones:  # a method on two backbones: a comparison for each
                row = _compared(frame, key, other, backbone if len(backbones) > 1 else None,
                                ci_method, refused, partial)
                if row is not None:
                    rows.append(row)
    refused = list(dict.fromkeys(refused))  # one note per reason, in order
    if not rows:
        reasons = "; ".join(refused) or "no method shares a cell with it"
        if strict:
            raise NothingToCompare(f"nothing to compare against {reference}: {reasons}", refused)
        refused = refused or [f"no method shares a cell with {reference}"]
        return Comparison(reference, pd.DataFrame(columns=CELL_KEYS), refused, power, partial)
    table = pd.DataFrame(rows)
    # Two families: the seed-level claims, and the within-one-run (episode-level) ones.
    seeds = (table["level"] == "seeds").to_numpy()
    table["t_p_holm"] = np.where(seeds, stats.holm(table["t_p"].where(seeds)),
                                 stats.holm(table["t_p"].where(~seeds)))
    table["signflip_p_holm"] = stats.holm(table["signflip_p"].where(seeds))
    table["wilcoxon_p_holm"] = stats.holm(table["wilcoxon_p"])
    table["verdict"] = [verdict(row) for _, row in table.iterrows()]
    if power is not None:
        table["seeds_needed"] = [
            stats.seeds_needed(row["diff_sd"], power) if row["level"] == "seeds" else None
            for _, row in table.iterrows()]
    return Comparison(reference, table, refused, power, partial)


def _compared(frame, key: dict, other: str, backbone: str | None, ci_method: str,
              refused: list, partial: list) -> dict | None:
    """One comparison row (seed level where ≥ 2 seeds pair), or None with the reason noted."""
    method = key["method"]
    pairing = seed_pairing(frame, key, other, backbone)
    label = other if backbone is None else f"{other} ({backbone})"
    if pairing.left_out and pairing.seeds:
        partial.append(f"{method} vs {label} in {cell_label(key)}: compared on seeds "
                       f"{', '.join(map(str, pairing.seeds))} only ({'; '.join(pairing.left_out)})")
    if not pairing.seeds:
        try:  # no seed pairs: the episode-level reason (different episodes, missing files)
            paired_episodes(frame, key, other)
        except BenchError as error:
            if isinstance(error, EpisodesMismatch):
                refused.append(str(error))
                return None
        reason = "; ".join(pairing.left_out) or "no seed in common"
        refused.append(f"{method} and {label} in {cell_label(key)} share no training seed "
                       f"tested on the same episodes ({reason})")
        return None
    same = len({a.size for a in pairing.a_episodes}) == 1 and len(pairing.hashes) == 1
    if same and len(pairing.seeds) >= 2:  # one episode set: each episode once, seed-averaged
        a, b = np.mean(pairing.a_episodes, axis=0), np.mean(pairing.b_episodes, axis=0)
    else:
        a, b = np.concatenate(pairing.a_episodes), np.concatenate(pairing.b_episodes)
    episode = stats.paired_test(a, b, ci_method)
    backbone_of_other = backbone or str(cell_rows(frame, key, other)["backbone"].iloc[0])
    row = {**key, "backbone": backbone_of_other, "method": label, "seeds": len(pairing.seeds),
           "seed_list": ",".join(map(str, pairing.seeds)),
           "episode_diff": episode.mean_diff, "episode_ci95": episode.ci95,
           "episode_t_p": episode.t_p, "wilcoxon_p": episode.wilcoxon_p, "n": episode.n}
    if len(pairing.seeds) >= 2:
        test = stats.seed_paired_test(pairing.a_values, pairing.b_values)
        row.update(level="seeds", diff=test.mean_diff, ci95=test.ci95, t_p=test.t_p,
                   signflip_p=test.signflip_p, wins=test.wins, diff_sd=test.sd,
                   seed_diffs=" ".join(f"{d:+.2f}" for d in test.differences))
        if same:  # on one episode set the CI over runs is conditional on it: add its sampling
            from scipy import stats as scipy_stats

            se = np.sqrt(test.sd ** 2 / test.seeds + (a - b).var(ddof=1) / a.size)
            t = test.mean_diff / se if se > 0 else np.nan
            row.update(ci95_both=float(scipy_stats.t.ppf(0.975, test.seeds - 1) * se),
                       t_p_both=float(2 * scipy_stats.t.sf(abs(t), test.seeds - 1))
                       if se > 0 else np.nan)
        else:
            row.update(ci95_both=test.ci95, t_p_both=test.t_p)
    else:
        row.update(level="episodes", diff=episode.mean_diff, ci95=episode.ci95, t_p=episode.t_p,
                   signflip_p=np.nan, wins=np.nan, diff_sd=np.nan, ci95_both=np.nan,
                   t_p_both=np.nan,
                   seed_diffs=f"{episode.mean_diff:+.2f}")
    return row
