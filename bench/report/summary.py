"""`bench report`'s table: one row per cell, its accuracy over training runs, and the bold.

Reads results (``bench.results.load``) and their per-episode accuracies; never runs anything.

Two sources of randomness (docs/report.md): the test episodes and the training run. A table
cell is one (dataset, split, way, method (backbone), shot); its rows are training runs (seeds).

- **S ≥ 2 seeds**: the cell's accuracy is the mean of the S per-seed accuracies (each the mean over
  that run's test episodes) and its ± is the 95% CI over runs (Student t on the S per-seed values,
  S − 1 degrees of freedom), which covers both sources. ``episode_ci95`` (the CI of the pooled
  episodes, which covers episode sampling only), ``between_sd`` (SD of the per-seed accuracies)
  and ``within_se`` (a run's episode standard error, root mean square over the seeds) stay beside
  it.
- **S = 1**: no interval over runs exists; the ± is the episode CI of the one run
  (``ci_level`` = "episodes").

Bold. In each column (shot) the best method is bold only if its lead over the runner-up holds over
training runs: the paired t-test over the seeds both share (each seed's two runs tested on
identical episodes), p < 0.05; where they share no seeds but both have S ≥ 2, non-overlapping
seed-level CIs. A lead that is significant only within one training run (S = 1: paired t-test on the
episodes) is not bold; ``within_run_lead`` marks it.
"""

from __future__ import annotations

import numpy as np

from bench import stats
from bench.report.pairing import ALPHA, seed_pairing
from bench.report.rows import (
    CELL_KEYS,
    GROUP_KEYS,
    episode_vector,
    missing_episodes,
    seed_values,
    with_episodes,
)


def summarize(frame, ci_method: str = "normal"):
    """One row per cell: ``acc`` and ``ci95`` in percent (over seeds where S ≥ 2, over the one
    run's episodes where S = 1: ``ci_level``), ``episode_ci95``, ``between_sd``, ``within_se``,
    ``n_episodes``, ``n_seeds``, ``ci_method`` (of the episode CI), ``bold`` and its ``lead_test``,
    and ``within_run_lead`` (best of its column, significant within one training run only)."""
    import pandas as pd

    stats.check_ci_method(ci_method)
    frame = with_episodes(frame)
    rows = []
    for key, cell in frame.groupby(CELL_KEYS, sort=True):
        per_seed = seed_values(cell)
        accs = np.array([value[0] for value in per_seed.values()])
        shared = False
        if missing_episodes(cell):  # the CSV's numbers, combined as `bench check` does
            episode_acc, episode_ci = float(cell["acc"].mean()), stats.combined_ci(cell["ci95"])
            count, episode_sd = int(cell["test_episodes"].sum()), np.nan
        else:
            vector, shared = episode_vector(cell)
            (episode_acc, episode_ci), count = stats.mean_ci(vector, ci_method), int(vector.size)
            episode_sd = float(vector.std(ddof=1)) if vector.size > 1 else np.nan
        seeds = len(per_seed)
        between = float(accs.std(ddof=1)) if seeds >= 2 else np.nan
        if seeds >= 2:
            (acc, ci95), level = stats.seed_ci(accs), "seeds"
        else:
            acc, ci95, level = episode_acc, episode_ci, "episodes"
        # Over runs and episodes at once: with every run on one episode set, the between-run SD
        # is conditional on that set, so the episodes' own sampling term is added.
        both = ci95
        if seeds >= 2 and shared:
            from scipy import stats as scipy_stats

            both = float(scipy_stats.t.ppf(0.975, seeds - 1)
                         * np.sqrt(between ** 2 / seeds + episode_sd ** 2 / count))
        within = float(np.sqrt(np.nanmean([value[1] ** 2 for value in per_seed.values()])))
        rows.append({**dict(zip(CELL_KEYS, key)), "acc": acc, "ci95": ci95, "ci_level": level,
                     "shared_episodes": shared, "ci95_both": both,
                     "episode_acc": episode_acc, "episode_ci95": episode_ci,
                     "between_sd": between, "within_se": within, "n_episodes": count,
                     "episodes_per_run": int(np.median([value[2] for value in
                                                        per_seed.values()])),
                     "n_seeds": seeds, "seeds": ",".join(map(str, per_seed)),
                     "ci_method": ci_method, "from_csv": missing_episodes(cell)})
    summary = pd.DataFrame(rows)
    summary["bold"] = False
    summary["lead_test"] = ""
    summary["within_run_lead"] = False
    for _, column in summary.groupby(GROUP_KEYS + ["shot"], sort=False):
        _mark_best(summary, column, frame)
    return summary


def _mark_best(summary, column, frame) -> None:
    """Set ``bold``/``lead_test`` on the best row of one column when its lead holds over training
    runs; ``within_run_lead`` when it is significant within one training run only."""
    if len(column) < 2:
        return
    ranked = column.sort_values("acc", ascending=False)
    best, runner_up = ranked.iloc[0], ranked.iloc[1]
    if best["acc"] == runner_up["acc"]:
        return
    pairing = seed_pairing(frame, best, runner_up["method"], runner_up["backbone"])
    if len(pairing.seeds) >= 2:
        test = stats.seed_paired_test(pairing.a_values, pairing.b_values)
        significant = test.t_p < ALPHA and test.mean_diff > 0  # ahead where they pair
        how = f"paired t over {test.seeds} seeds"
    elif best["n_seeds"] >= 2 and runner_up["n_seeds"] >= 2:
        significant = not stats.intervals_overlap(best["acc"], best["ci95"],
                                                  runner_up["acc"], runner_up["ci95"])
        how = "non-overlapping CIs over seeds"
    else:  # one training run: only an episode-level statement is possible
        if pairing.seeds:  # the one seed both have, on identical episodes
            test = stats.paired_test(pairing.a_episodes[0], pairing.b_episodes[0])
            within = test.t_p < ALPHA and test.mean_diff > 0
            how = "within one run: paired t-test"
        else:
            within = not stats.intervals_overlap(best["episode_acc"], best["episode_ci95"],
                                                 runner_up["episode_acc"],
                                                 runner_up["episode_ci95"])
            how = "within one run: non-overlapping CIs"
        if within:
            summary.loc[best.name, ["within_run_lead", "lead_test"]] = [True, how]
        return
    if significant:
        summary.loc[best.name, ["bold", "lead_test"]] = [True, how]


