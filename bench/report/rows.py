"""Results rows as `bench report` groups them: table cells, experiments told apart by their
settings, each row's per-episode accuracies, and the per-seed values of a cell.

A table cell is one (dataset, split, way, method (backbone), shot); its rows are training runs
(seeds). Reads results and their per-episode files; never runs anything.
"""

from __future__ import annotations

import json

import numpy as np

from bench.core.config import LEFT_OUT_DEFAULTS
from bench.errors import BenchError
from bench.results import per_episode, per_episode_path

# The backbone is an attribute of a method (TRM on Conv-64F beside ProtoNet on Conv-4 is the
# comparison the harness exists for), so it labels rows rather than splitting tables.
GROUP_KEYS = ["dataset", "split", "way"]


CELL_KEYS = GROUP_KEYS + ["method", "backbone", "shot"]


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


def missing_episodes(rows) -> bool:
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
    tables, comparisons, checks and plots keep them apart from rows trained on the test set
    (rows already labelled keep their label)."""
    if "train_dataset" not in frame.columns:
        return frame["dataset"].tolist()
    trained = frame["train_dataset"].fillna(frame["dataset"])
    return [tested if train == tested or str(tested).startswith(f"{train}→")
            else f"{train}→{tested}" for train, tested in zip(trained, frame["dataset"])]


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
        if missing_episodes(runs):
            se = float(np.sqrt(np.mean((runs["ci95"].to_numpy(dtype=float) / 1.96) ** 2)))
            values[int(seed)] = (float(runs["acc"].mean()), se, int(runs["test_episodes"].sum()))
        else:
            pooled = np.concatenate(list(runs["episodes"])) * 100.0
            se = float(pooled.std(ddof=1) / np.sqrt(pooled.size)) if pooled.size > 1 else np.nan
            values[int(seed)] = (float(pooled.mean()), se, int(pooled.size))
    return values


def cell_rows(frame, key, method: str, backbone: str | None = None):
    """``method``'s rows in ``key``'s cell; on ``backbone`` where given (a method run on two
    backbones has two cells)."""
    mask = (frame["method"] == method).to_numpy().copy()
    for column in GROUP_KEYS + ["shot"]:  # the backbone belongs to the method, not the cell
        mask &= (frame[column] == key[column]).to_numpy()
    if backbone is not None:
        mask &= (frame["backbone"] == backbone).to_numpy()
    return frame[mask]
