"""What `bench report` computes from results rows: per-cell summaries and paired comparisons.

Reads results (``bench.results.load``) and their per-episode accuracies; never runs anything.

Aggregation over seeds. A table cell is one (dataset, split, way, method (backbone), shot); its rows
are the seeds. The per-episode accuracies of all its rows are pooled: the cell's accuracy is the mean
over all N pooled episodes (= the mean of the per-seed accuracies when seeds have equally many
episodes) and its CI is computed from those N values. The CI therefore covers episode sampling, not
the spread between training seeds; ``n_seeds`` is reported beside ``n_episodes`` so a reader knows.

Bold. In each column (shot) the best method is marked only if its lead over the runner-up is
significant at 0.05: by the paired t-test when both were measured on the same episodes (same set of
``episodes_hash``), otherwise by non-overlapping 95% CIs.

Pairing. Two methods are compared episode by episode only when their rows in a cell carry the same
set of ``episodes_hash`` values; the episodes of each hash are concatenated in hash order. Anything
else is refused, saying which hashes differ. Holm's correction runs over all comparisons that one
``compare`` call makes (every other method × every cell).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

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
    if not per_episode_path(row["source_dir"], row["cell_id"]).exists():
        return None
    return per_episode(row)


def _missing_episodes(rows) -> bool:
    return any(episodes is None for episodes in rows["episodes"])


# Settings that the cell keys already hold, or that tell seeds of one experiment apart.
_CELL_SETTINGS = {"dataset", "way", "shot", "method", "method_label", "method_params.backbone",
                  "seed"}


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


def summarize(frame, ci_method: str = "normal"):
    """One row per cell: acc and ci95 in percent, n_episodes, n_seeds, ci_method, and ``bold``."""
    import pandas as pd

    stats.check_ci_method(ci_method)
    frame = with_episodes(frame)
    rows = []
    for key, cell in frame.groupby(CELL_KEYS, sort=True):
        if _missing_episodes(cell):  # the CSV's numbers, combined as `bench check` does
            acc, ci95 = float(cell["acc"].mean()), stats.combined_ci(cell["ci95"])
            count = int(cell["test_episodes"].sum())
        else:
            pooled = np.concatenate(list(cell["episodes"]))
            (acc, ci95), count = stats.mean_ci(pooled * 100.0, ci_method), int(pooled.size)
        rows.append({**dict(zip(CELL_KEYS, key)), "acc": acc, "ci95": ci95,
                     "n_episodes": count, "n_seeds": int(cell["seed"].nunique()),
                     "ci_method": ci_method, "from_csv": _missing_episodes(cell)})
    summary = pd.DataFrame(rows)
    summary["bold"] = False
    summary["lead_test"] = ""
    for _, column in summary.groupby(GROUP_KEYS + ["shot"], sort=False):
        _mark_best(summary, column, frame)
    return summary


def _mark_best(summary, column, frame) -> None:
    """Set ``bold``/``lead_test`` on the best row of one column when its lead is significant."""
    if len(column) < 2:
        return
    ranked = column.sort_values("acc", ascending=False)
    best, runner_up = ranked.iloc[0], ranked.iloc[1]
    if best["acc"] == runner_up["acc"]:
        return
    try:
        test = stats.paired_test(*paired_episodes(frame, best, runner_up["method"]))
        significant, how = test.t_p < ALPHA, "paired t-test"
    except EpisodesMismatch:
        significant = not stats.intervals_overlap(best["acc"], best["ci95"],
                                                  runner_up["acc"], runner_up["ci95"])
        how = "non-overlapping CIs"
    if significant:
        summary.loc[best.name, ["bold", "lead_test"]] = [True, how]


def _cell_rows(frame, key, method: str):
    mask = (frame["method"] == method).to_numpy().copy()
    for column in GROUP_KEYS + ["shot"]:  # not the backbone: it belongs to the method
        mask &= (frame[column] == key[column]).to_numpy()
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
    mine = _episodes_by_hash(_cell_rows(frame, key, method), method, key)
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


def compare(frame, reference: str, against=None, ci_method: str = "normal",
            strict: bool = True) -> Comparison:
    """Every other method (or those in ``against``) vs ``reference`` in every cell they share.

    Columns: the cell keys, ``method`` (the other one), ``diff`` (reference − method, points),
    ``ci95``, ``t_p``, ``wilcoxon_p``, their Holm-adjusted ``t_p_holm``/``wilcoxon_p_holm``, ``n``.
    Raises BenchError if the reference is unknown, NothingToCompare if nothing could be paired
    (unless not ``strict``: then the table is empty). ``refused`` also names every table without
    a ``reference`` row, and the cells where a method of ``against`` has no row.
    """
    import pandas as pd

    stats.check_ci_method(ci_method)
    frame = with_episodes(frame)
    methods = sorted(frame["method"].unique())
    for name in [reference, *(against or [])]:
        if name not in methods:
            raise BenchError(f"method {name!r} is not in the results; methods: {', '.join(methods)}")
    others = [m for m in (against or methods) if m != reference]
    rows, refused = [], _tables_without(frame, reference)
    reference_cells = frame[frame["method"] == reference]
    for key, _ in reference_cells.groupby(CELL_KEYS, sort=True):
        key = dict(zip(CELL_KEYS, key))
        for other in others:
            if not len(_cell_rows(frame, key, other)):
                if against:
                    refused.append(f"{other} has no result in {cell_label(key)}")
                continue
            try:
                test = stats.paired_test(*paired_episodes(frame, key, other), ci_method)
            except EpisodesMismatch as error:
                refused.append(str(error))
                continue
            rows.append({**key, "method": other, "diff": test.mean_diff, "ci95": test.ci95,
                         "t_p": test.t_p, "wilcoxon_p": test.wilcoxon_p, "n": test.n})
    refused = list(dict.fromkeys(refused))  # one note per reason, in order
    if not rows:
        reasons = "; ".join(refused) or "no method shares a cell with it"
        if strict:
            raise NothingToCompare(f"nothing to compare against {reference}: {reasons}", refused)
        refused = refused or [f"no method shares a cell with {reference}"]
        return Comparison(reference, pd.DataFrame(columns=CELL_KEYS), refused)
    table = pd.DataFrame(rows)
    table["t_p_holm"] = stats.holm(table["t_p"])
    table["wilcoxon_p_holm"] = stats.holm(table["wilcoxon_p"])
    return Comparison(reference, table, refused)
