"""What `bench report` computes from results rows: per-cell summaries and paired comparisons.

Reads results (``bench.results.load``) and their per-episode accuracies; never runs anything.

Two sources of randomness (``docs/statistics.md``): the test episodes and the training run. A table
cell is one (dataset, split, way, method (backbone), shot); its rows are training runs (seeds).

- **S ≥ 2 seeds**: the cell's accuracy is the mean of the S per-seed accuracies (each the mean over
  that run's test episodes) and its ± is the 95% CI over runs (Student t on the S per-seed values,
  S − 1 degrees of freedom), which covers both sources. ``episode_ci95`` (the CI of the pooled
  episodes, which covers episode sampling only), ``between_sd`` (SD of the per-seed accuracies)
  and ``within_se`` (a run's episode standard error, root mean square over the seeds) stay beside it.
- **S = 1**: no interval over runs exists; the ± is the episode CI of the one run
  (``ci_level`` = "episodes").

Bold. In each column (shot) the best method is bold only if its lead over the runner-up holds over
training runs: the paired t-test over the seeds both share (each seed's two runs tested on
identical episodes), p < 0.05; where they share no seeds but both have S ≥ 2, non-overlapping
seed-level CIs. A lead that is significant only within one training run (S = 1: paired t-test on the
episodes) is not bold; ``within_run_lead`` marks it.

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

import json
from dataclasses import dataclass, field

import numpy as np

from bench import stats
from bench.config import LEFT_OUT_DEFAULTS
from bench.errors import BenchError
from bench.results import per_episode, per_episode_path

# The backbone is an attribute of a method (TRM on Conv-64F beside ProtoNet on Conv-4 is the
# comparison the harness exists for), so it labels rows rather than splitting tables.
GROUP_KEYS = ["dataset", "split", "way"]
CELL_KEYS = GROUP_KEYS + ["method", "backbone", "shot"]
ALPHA = 0.05


class EpisodesMismatch(BenchError):
    """Two methods' results were measured on different episodes and cannot be paired."""


class NothingToCompare(BenchError):
    """No pair of results could be compared; ``refused`` says why for each."""

    def __init__(self, message: str, refused: list[str]):
        super().__init__(message)
        self.refused = refused


def with_episodes(frame):
    """``frame`` without duplicate cell_ids, plus an ``episodes`` column (per-episode accuracies,
    None where the row's per-episode file is absent: the row then counts by its acc and ci95).

    Rows of one cell that are not seeds of one experiment get their own method labels
    (:func:`distinguish_experiments`)."""
    if not len(frame):
        raise BenchError("the results hold no rows yet; finish a `bench run` first")
    frame = pooling_rows(frame, CELL_KEYS)
    if "episodes" not in frame.columns:
        frame = frame.assign(episodes=[_episodes_if_present(row) for _, row in frame.iterrows()])
    return frame


def _episodes_if_present(row):
    path = per_episode_path(row["source_dir"], row["cell_id"])
    if not path.exists():
        return None
    episodes = per_episode(row)
    if episodes.ndim != 1 or not episodes.size or not np.all(np.isfinite(episodes)) \
            or episodes.min() < 0 or episodes.max() > 1:
        raise BenchError(f"{path} does not hold per-episode accuracies (it must be a non-empty "
                         "list of numbers in [0, 1]); delete it and rerun its cell, or restore it")
    return episodes


def episode_vector(rows) -> tuple[np.ndarray, bool]:
    """(per-episode accuracies in percent, shared) of one method's rows in a cell. ``shared``:
    every seed was tested on the same episodes (``--test-seed``), and the vector is the mean over
    the seeds of each episode (N values, not S·N copies of N episodes); otherwise the seeds'
    episodes are concatenated in (seed, hash) order."""
    by_seed = {}
    for _, row in rows.sort_values(["seed", "episodes_hash"]).iterrows():
        by_seed.setdefault(int(row["seed"]), []).append((row["episodes_hash"], row["episodes"]))
    hash_sets = {tuple(h for h, _ in runs) for runs in by_seed.values()}
    shared = len(by_seed) >= 2 and len(hash_sets) == 1 and len(
        {sum(e.size for _, e in runs) for runs in by_seed.values()}) == 1
    runs = [np.concatenate([e for _, e in runs]) * 100.0 for runs in by_seed.values()]
    if shared:
        return np.mean(runs, axis=0), True
    return np.concatenate(runs), False


def _missing_episodes(rows) -> bool:
    return any(episodes is None for episodes in rows["episodes"])


# Settings that the cell keys already hold, or that tell seeds of one experiment apart.
_CELL_SETTINGS = {"dataset", "way", "shot", "method", "method_label", "method_params.backbone",
                  "seed", "test_seed"}


def pooling_rows(frame, keys: list[str]):
    """Results rows ready to pool by ``keys``: each cell_id once, empty split/backbone as "",
    and the rows of different experiments relabelled (:func:`distinguish_experiments`)."""
    frame = frame.drop_duplicates("cell_id").reset_index(drop=True)
    frame = frame.assign(**{column: frame[column].fillna("") for column in ("split", "backbone")})
    return distinguish_experiments(frame.assign(dataset=domain_labels(frame)), keys)


def domain_labels(frame) -> list[str]:
    """``dataset``, or ``train→test`` for cross-domain rows (``bench run --test-dataset``), so
    tables, comparisons, checks and plots keep them apart from rows trained on the test set."""
    if "train_dataset" not in frame.columns:
        return frame["dataset"].tolist()
    trained = frame["train_dataset"].fillna(frame["dataset"])
    return [tested if train == tested else f"{train}→{tested}"
            for train, tested in zip(trained, frame["dataset"])]


def distinguish_experiments(frame, keys: list[str]):
    """Rows of a cell (``keys``) are pooled as seeds of one experiment. Rows whose settings differ
    in more than the seed (say a 1-shot- and a 5-shot-trained model tested at 5-shot) are
    different experiments: pooling them would average two models and, on a shared seed, count
    the same episodes twice. Their ``method`` gets the differing settings appended,
    ``protonet [train.shot=1]`` and ``protonet [train.shot=5]``, so they stay apart in tables,
    comparisons and checks. A row of the same model tested at another shot, alone in its cell,
    gets the same label (the 1-shot cell of ``protonet [train.shot=1]`` is not a bare
    ``protonet`` row). ``frame`` needs a fresh RangeIndex."""
    if "config" not in frame.columns or not len(frame):
        return frame
    # a setting that configs leave out at its default reads as that default, not as unset
    settings = [{**LEFT_OUT_DEFAULTS, **flat_settings(text)} for text in frame["config"]]
    methods = frame["method"].astype(str).tolist()

    def detail(i: int, differing: list[str]) -> str:
        return ", ".join(f"{name}={settings[i].get(name, 'unset')}" for name in differing)

    cells = list(frame.groupby(keys, sort=False).indices.items())
    labelled = {}  # (the cell's keys but the shot) → [(differing names, a labelled row's model)]
    split = set()  # the cells whose rows pass one labelled
    for cell, positions in cells:
        rows = [settings[i] for i in positions]
        names = sorted({name for row in rows for name in row} - _CELL_SETTINGS)
        differing = [name for name in names if len({repr(row.get(name)) for row in rows}) > 1]
        if not differing:
            continue
        split.add(cell)
        for i in positions:
            methods[i] = f"{methods[i]} [{detail(i, differing)}]"
            labelled.setdefault(_without_shot(keys, cell), []).append(
                (differing, _model_settings(settings[i])))
    if "shot" not in keys:
        return frame.assign(method=methods)
    for cell, positions in cells:
        candidates = labelled.get(_without_shot(keys, cell))
        if cell in split or not candidates:
            continue
        for i in positions:
            model = _model_settings(settings[i])
            differing = next((names for names, other in candidates if other == model), None)
            if differing:
                methods[i] = f"{methods[i]} [{detail(i, differing)}]"
    return frame.assign(method=methods)


# how a model was tested, not which model: left out when matching a row to a labelled model
_NOT_MODEL_SETTINGS = _CELL_SETTINGS | {"test_episodes", "query"}


def _without_shot(keys: list[str], cell) -> tuple:
    cell = cell if isinstance(cell, tuple) else (cell,)
    return tuple(value for key, value in zip(keys, cell) if key != "shot")


def _model_settings(settings: dict) -> dict:
    """The settings that tell one trained model from another: all but the cell's and the test's."""
    return {name: repr(value) for name, value in settings.items()
            if name not in _NOT_MODEL_SETTINGS}


def flat_settings(text) -> dict:
    """A results row's ``config`` JSON as {dotted name: value}; {} when absent."""
    flat = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                walk(f"{prefix}{name}.", inner)
        else:
            flat[prefix.removesuffix(".")] = value

    if isinstance(text, str) and text:
        walk("", json.loads(text))
    return flat


def cell_label(key: dict) -> str:
    return f"{key['dataset']} {key['way']}-way {key['shot']}-shot"


def seed_values(rows) -> dict[int, tuple[float, float, int]]:
    """{seed: (accuracy %, episode standard error %, episodes)} of one method's rows in one cell.
    A seed's rows (test sets) are pooled; without per-episode files, the row's acc and ci95/1.96."""
    values = {}
    for seed, runs in rows.groupby("seed", sort=True):
        if _missing_episodes(runs):
            se = float(np.sqrt(np.mean((runs["ci95"].to_numpy(dtype=float) / 1.96) ** 2)))
            values[int(seed)] = (float(runs["acc"].mean()), se, int(runs["test_episodes"].sum()))
        else:
            pooled = np.concatenate(list(runs["episodes"])) * 100.0
            se = float(pooled.std(ddof=1) / np.sqrt(pooled.size)) if pooled.size > 1 else np.nan
            values[int(seed)] = (float(pooled.mean()), se, int(pooled.size))
    return values


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
        if _missing_episodes(cell):  # the CSV's numbers, combined as `bench check` does
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
                     "ci_method": ci_method, "from_csv": _missing_episodes(cell)})
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


def _cell_rows(frame, key, method: str, backbone: str | None = None):
    """``method``'s rows in ``key``'s cell; on ``backbone`` where given (a method run on two
    backbones has two cells)."""
    mask = (frame["method"] == method).to_numpy().copy()
    for column in GROUP_KEYS + ["shot"]:  # the backbone belongs to the method, not the cell
        mask &= (frame[column] == key[column]).to_numpy()
    if backbone is not None:
        mask &= (frame["backbone"] == backbone).to_numpy()
    return frame[mask]


def _episodes_by_hash(rows, method: str, key) -> dict:
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
    mine = _episodes_by_hash(_cell_rows(frame, key, method, key.get("backbone")), method, key)
    theirs = _episodes_by_hash(_cell_rows(frame, key, other), other, key)
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
    mine = _by_seed(_cell_rows(frame, key, method, key.get("backbone")), method, key)
    theirs = _by_seed(_cell_rows(frame, key, other, other_backbone), other, key)
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
            raise BenchError(f"method {name!r} is not in the results; methods: {', '.join(methods)}")
    others = [m for m in (against or methods) if m != reference]
    rows, refused, partial = [], _tables_without(frame, reference), []
    reference_cells = frame[frame["method"] == reference]
    for key, _ in reference_cells.groupby(CELL_KEYS, sort=True):
        key = dict(zip(CELL_KEYS, key))
        for other in others:
            backbones = sorted(set(_cell_rows(frame, key, other)["backbone"]))
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
    backbone_of_other = backbone or str(_cell_rows(frame, key, other)["backbone"].iloc[0])
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
