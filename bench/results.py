"""Tidy, append-only results: one row per (method, dataset, way, shot, seed) cell.

Layout of an output directory ``DIR``:
- ``DIR/results.csv``: one row per finished cell, columns ``COLUMNS`` (acc and ci95 in percent);
- ``DIR/per_episode/<cell_id>.npy``: float64 accuracy (0..1) of every test episode, in episode
  order;
- ``DIR/configs/<cell_id>.json``: the resolved configuration of the cell (also in the ``config``
  column);
- ``DIR/logs/<cell_id>.csv``: the training log (episode, loss, train_acc, val_acc, lr);
- ``DIR/checkpoints/``: resumable training state of unfinished cells (deleted when a cell finishes).

Rows are appended under an exclusive file lock and the file is replaced atomically (write, then
rename), so concurrent writers never lose or duplicate a row and a killed run never leaves a torn
file. Readers (``load``) only read.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from bench.errors import BenchError

# 2: `train_dataset` (the dataset the model was trained on; `dataset` is the one tested on, they
# differ in cross-domain rows). Rows of schema 1 read as train_dataset = dataset.
# 3: `train_data` (the training split's fingerprint, bench.data.ImageSet.fingerprint), so a finished
# cell is reused only if its model was trained on the files the data now gives; older rows read as
# "" (not known, not checked).
# 4: `test_seed` (the seed of the test episodes, `bench run --test-seed`); older rows read as the
# training seed, which drew their test episodes.
SCHEMA_VERSION = 4

COLUMNS = [
    "method", "dataset", "split", "backbone", "way", "shot", "query", "test_episodes",
    "acc", "ci95", "ci_method", "seed", "test_seed", "train_dataset", "train_episodes", "train_way",
    "train_shot", "train_query", "precision", "best_episode", "train_seconds", "eval_seconds",
    "episodes_hash", "train_data",
    "commit", "dirty", "timestamp", "host", "cpu", "threads", "torch", "device",
    "cell_id", "schema_version", "config",
]
# Columns added after schema 1, and the column whose value they take in older rows (None: empty).
ADDED_COLUMNS = {"train_dataset": "dataset", "train_data": None, "test_seed": "seed"}


def digest(value: dict) -> str:
    """The first 16 hex digits of the SHA-256 of ``value`` as JSON with sorted keys (a value JSON
    cannot hold is written as its ``str``): the cell and training ids, the pre-training key and
    the dataset cache names. Stored files are named by it, so it must never change."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def results_path(out_dir: Path) -> Path:
    return Path(out_dir) / "results.csv"


def per_episode_path(out_dir: Path, cell_id: str) -> Path:
    return Path(out_dir) / "per_episode" / f"{cell_id}.npy"


def log_path(out_dir: Path, cell_id: str) -> Path:
    return Path(out_dir) / "logs" / f"{cell_id}.csv"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_per_episode(out_dir: Path, cell_id: str, accuracies: np.ndarray) -> Path:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(accuracies, dtype=np.float64))
    path = per_episode_path(out_dir, cell_id)
    atomic_write_bytes(path, buffer.getvalue())
    return path


@contextmanager
def locked(out_dir: Path, name: str = ".lock") -> Iterator[None]:
    """An exclusive lock on DIR/NAME: DIR/.lock guards read-modify-writes of results.csv;
    DIR/locks/<training_id>.lock makes concurrent runs train a shared model once."""
    path = Path(out_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append_row(out_dir: Path, row: dict, replace: bool = False) -> bool:
    """Append one cell's row unless a row with its cell_id is already there; True if written.

    ``replace`` drops an existing row of the same cell first (``bench run --force``).
    """
    import csv
    import io

    path = results_path(out_dir)
    missing = [column for column in COLUMNS if column not in row]
    if missing:
        raise ValueError(f"results row lacks columns {missing}")
    with locked(out_dir):
        existing = read_text(path) if path.exists() else ""
        if existing:
            checked_rows(path, existing)
            existing = upgraded(path, existing)
            if row["cell_id"] in finished_cell_ids(out_dir, existing):
                if not replace:
                    return False
                existing = _without_cell(existing, row["cell_id"])
        buffer = io.StringIO()
        header = existing.splitlines()[0].split(",") if existing else COLUMNS
        writer = csv.DictWriter(buffer, fieldnames=header, restval="", lineterminator="\n")
        if not existing:
            writer.writeheader()
        writer.writerow({column: _cell(row[column]) for column in COLUMNS})
        if existing and not existing.endswith("\n"):
            existing += "\n"
        atomic_write_text(path, existing + buffer.getvalue())
    return True


def _cell(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, float):
        return repr(value)
    return value


def _without_cell(text: str, cell_id: str) -> str:
    import csv
    import io

    reader = csv.DictReader(io.StringIO(text))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=reader.fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(row for row in reader if row["cell_id"] != cell_id)
    return buffer.getvalue()


def check_header(path: Path, header: str) -> None:
    columns = header.strip().split(",")
    if "cell_id" not in columns or "schema_version" not in columns:
        raise BenchError(f"{path} is not a fewshot-bench results file (no cell_id/schema_version "
                         "columns); use another --out directory")


def upgraded(path: Path, text: str) -> str:
    """The rows of a results file under today's COLUMNS (an older schema's file gains the added
    columns, filled as ADDED_COLUMNS says), so appending never misaligns a row."""
    import csv
    import io

    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames == COLUMNS:
        return text
    unknown = sorted(set(reader.fieldnames or ()) - set(COLUMNS))
    if unknown:
        raise BenchError(f"{path} has columns this fewshot-bench does not know "
                         f"({', '.join(unknown)}); upgrade fewshot-bench or use another --out "
                         "directory")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in reader:
        for column, source in ADDED_COLUMNS.items():
            row.setdefault(column, row.get(source, "") if source else "")
        writer.writerow({column: row.get(column, "") for column in COLUMNS})
    return buffer.getvalue()


def finished_cell_ids(out_dir: Path, text: str | None = None) -> set[str]:
    """cell_ids with a row in DIR/results.csv."""
    import csv
    import io

    path = results_path(out_dir)
    if text is None:
        if not path.exists():
            return set()
        text = path.read_text()
    rows = csv.DictReader(io.StringIO(text))
    return {row["cell_id"] for row in rows if row.get("cell_id")}


def finished_rows(out_dir: Path) -> dict[str, dict]:
    """{cell_id: row} of DIR/results.csv, every row checked (a damaged line is a BenchError)."""
    path = results_path(out_dir)
    if not path.exists():
        return {}
    return {row["cell_id"]: row for row in checked_rows(path, read_text(path))}


# Columns every row must hold as numbers; a row that lacks one was not written by `bench run`.
NUMERIC = ("way", "shot", "query", "test_episodes", "acc", "ci95", "seed", "schema_version")


def read_text(path: Path) -> str:
    """A results file's text; a BenchError for a binary (zip, image, ...) or unreadable file."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise BenchError(f"cannot read results file {path}: {error.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BenchError(f"{path} is not a fewshot-bench results file (not text); pass a "
                         "results.csv or the --out directory of a `bench run`") from None
    if "\0" in text:
        raise BenchError(f"{path} is not a fewshot-bench results file (binary data); pass a "
                         "results.csv or the --out directory of a `bench run`")
    return text


def checked_rows(path: Path, text: str) -> list[dict]:
    """The rows of a results file's ``text``, each checked: all fields present, cell_id set,
    numbers where numbers belong. A damaged line is a one-line error naming it."""
    import csv
    import io

    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames:
        check_header(path, ",".join(reader.fieldnames))
    rows = []
    lines = text.splitlines()
    start = reader.line_num + 1  # the line the next record begins on
    try:
        for row in reader:
            _check_schema(path, row.get("schema_version"))
            problem = _row_problem(row, len(reader.fieldnames))
            if problem:
                if reader.line_num > start:  # an open quote read the next lines into it
                    problem = (f"a quote on it is never closed, so line {start + 1}"
                               + (f"-{reader.line_num}" if reader.line_num > start + 1 else "")
                               + " was read into it")
                raise BenchError(f"{path} line {start} is damaged ({problem}): "
                                 f"{_shown(lines, start)}; delete or repair line {start}")
            rows.append(row)
            start = reader.line_num + 1
    except csv.Error as error:
        raise BenchError(f"{path} line {start} is damaged ({error}): {_shown(lines, start)}; "
                         "delete or repair that line") from None
    return rows


def _shown(lines: list[str], number: int) -> str:
    line = lines[number - 1] if 0 < number <= len(lines) else ""
    return repr(line if len(line) <= 60 else line[:57] + "...")


def _check_schema(path: Path, version) -> None:
    try:
        newer = float(version) > SCHEMA_VERSION
    except (TypeError, ValueError):
        return  # a damaged field: _row_problem names it
    if newer:
        raise BenchError(f"{path} has results schema {version}, newer than this fewshot-bench "
                         f"reads ({SCHEMA_VERSION}); upgrade fewshot-bench")


def _row_problem(row: dict, width: int) -> str:
    if None in row:
        return f"{width + len(row[None])} fields, the header has {width}"
    absent = [name for name, value in row.items() if value is None]
    if absent:
        return f"{width - len(absent)} fields, the header has {width}"
    if not row.get("cell_id", "").strip():
        return "no cell_id"
    for name in NUMERIC:
        if name in row:
            try:
                float(row[name])
            except ValueError:
                return f"{name} {row[name]!r} is not a number"
    return ""


def load(paths: Iterable[str | Path] | str | Path):
    """All rows of one or more results files (or directories holding results.csv) as a DataFrame.

    Adds ``source_dir`` (where per-episode files live). Refuses foreign files and newer schemas.
    """
    import io

    import pandas as pd

    if isinstance(paths, (str, Path)):
        paths = [paths]
    frames = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            path = results_path(path)
        if not path.is_file():
            raise BenchError(f"results file {path} does not exist; pass a results.csv or the --out "
                             "directory of a `bench run`")
        text = read_text(path)
        checked_rows(path, text)
        try:
            frame = pd.read_csv(io.StringIO(text))
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
            raise BenchError(f"cannot read results file {path}: {error}") from None
        if "cell_id" not in frame.columns or "schema_version" not in frame.columns:
            raise BenchError(f"{path} is not a fewshot-bench results file "
                             "(no cell_id/schema_version columns)")
        newest = frame["schema_version"].max() if len(frame) else SCHEMA_VERSION
        if newest > SCHEMA_VERSION:
            raise BenchError(f"{path} has results schema {newest}, newer than this fewshot-bench "
                             f"reads ({SCHEMA_VERSION}); upgrade fewshot-bench")
        for column, source in ADDED_COLUMNS.items():  # rows of an older schema
            old = frame[column] if column in frame else None
            fill = frame[source] if source else ""
            frame[column] = fill if old is None else old.astype(object).where(old.notna(), fill)
        frame["source_dir"] = str(path.resolve().parent)  # a symlinked results.csv works too
        frames.append(frame)
    if not frames:
        raise BenchError("no results files given")
    return pd.concat(frames, ignore_index=True)


def per_episode(row) -> np.ndarray:
    """Per-episode accuracies (0..1) of one results row (a pandas Series or dict)."""
    path = per_episode_path(Path(row["source_dir"]), row["cell_id"])
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise BenchError(f"cannot read per-episode accuracies {path}: {error}") from None
