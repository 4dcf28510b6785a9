"""`bench check`: fresh results against a committed baseline, for CI regression of accuracy.

The rule, per cell (method, dataset, split, backbone, way, shot):

    regression  ⇔  baseline_acc − new_acc > sqrt(ci_baseline² + ci_new²) + tolerance

with accuracies and 95% CI half-widths in percent. The right-hand side is the 95% CI half-width of
the difference of two independent estimates, so a cell fails when that interval lies entirely below
zero: the drop is larger than measurement noise explains. For runs on the same episodes the rule is
conservative (the paired difference has a narrower CI), so it does not cry wolf. When a cell has
several seeds, its accuracy is the mean of the seeds' ``acc`` and its CI is sqrt(Σ ci_i²) / k.

A cell of the baseline that the fresh results lack is a failure too (a method or setting silently
dropped from CI is a regression of coverage), unless ``allow_missing``. A cell only in the fresh
results passes ("new"). Improvements pass.

The baseline is a results CSV (the columns of ``bench.results.COLUMNS``); only ``acc`` and ``ci95``
are compared, so it needs no per-episode files. ``update_baseline`` rewrites it from fresh results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import stats
from bench.errors import BenchError
from bench.report import pooling_rows
from bench.results import COLUMNS, atomic_write_text, load

CHECK_KEYS = ["method", "dataset", "split", "backbone", "way", "shot"]


@dataclass(frozen=True)
class CellCheck:
    """The verdict on one cell: ``status`` is ok, regression, missing, missing-allowed or new."""

    key: tuple
    status: str
    baseline_acc: float = math.nan
    baseline_ci: float = math.nan
    new_acc: float = math.nan
    new_ci: float = math.nan
    tolerance: float = 0.0  # extra points allowed (training variance, another machine's floats)

    @property
    def drop(self) -> float:
        return self.baseline_acc - self.new_acc

    @property
    def allowed(self) -> float:
        ci = math.hypot(np.nan_to_num(self.baseline_ci), np.nan_to_num(self.new_ci))
        return ci + self.tolerance

    def describe(self) -> str:
        """One line naming the method, the cell and the numbers."""
        method, dataset, split, backbone, way, shot = self.key
        where = f"{method} on {dataset} {way}-way {shot}-shot ({split}, {backbone})"
        base = f"{self.baseline_acc:.2f} ± {self.baseline_ci:.2f}"
        new = f"{self.new_acc:.2f} ± {self.new_ci:.2f}"
        if self.status.startswith("missing"):
            label = "MISSING" if self.status == "missing" else "missing (allowed)"
            return f"{label} {where}: baseline {base}, no fresh result"
        if self.status == "new":
            return f"new {where}: {new} (not in the baseline)"
        verdict = "REGRESSION" if self.status == "regression" else "ok"
        return (f"{verdict} {where}: baseline {base}, new {new}, drop {self.drop:+.2f} points "
                f"(allowed {self.allowed:.2f})")


def cell_accuracies(frame) -> dict:
    """{cell key: (acc, ci95)} over seeds: mean accuracy, CI of that mean from the seeds' CIs."""
    frame = pooling_rows(frame, CHECK_KEYS)  # pool seeds, not experiments
    cells = {}
    for key, rows in frame.groupby(CHECK_KEYS, sort=True):
        cells[tuple(key)] = (float(rows["acc"].mean()), stats.combined_ci(rows["ci95"]))
    return cells


def check(baseline, fresh, allow_missing: bool = False, tolerance: float = 0.0
          ) -> list[CellCheck]:
    """Verdicts for every cell of either frame (results rows), in cell order.

    ``tolerance`` (points) is added to the allowed drop: the episode CIs do not cover the
    variance of training itself, which a run on another machine (other float rounding) shows.
    """
    base_cells, new_cells = cell_accuracies(baseline), cell_accuracies(fresh)
    verdicts = []
    for key in sorted(set(base_cells) | set(new_cells)):
        if key not in new_cells:
            verdicts.append(CellCheck(key, "missing" if not allow_missing else "missing-allowed",
                                      *base_cells[key]))
            continue
        if key not in base_cells:
            verdicts.append(CellCheck(key, "new", math.nan, math.nan, *new_cells[key]))
            continue
        verdict = CellCheck(key, "ok", *base_cells[key], *new_cells[key], tolerance)
        if verdict.drop > verdict.allowed:
            verdict = CellCheck(key, "regression", *base_cells[key], *new_cells[key], tolerance)
        verdicts.append(verdict)
    return verdicts


def failed(verdicts: list[CellCheck]) -> list[CellCheck]:
    return [v for v in verdicts if v.status in ("regression", "missing")]


def compared(verdicts: list[CellCheck]) -> list[CellCheck]:
    """The cells in both the baseline and the fresh results (a check of none proves nothing)."""
    return [v for v in verdicts if v.status in ("ok", "regression")]


def counts(verdicts: list[CellCheck]) -> str:
    """"2 compared, 1 missing, 3 new": how many cells of each kind."""
    kinds = {"compared": len(compared(verdicts)),
             "missing": sum(v.status.startswith("missing") for v in verdicts),
             "new": sum(v.status == "new" for v in verdicts)}
    return ", ".join(f"{count} {kind}" for kind, count in kinds.items())


def load_baseline(path) -> object:
    """The baseline rows; a BenchError that says how to create the file if it is absent."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"baseline {path} does not exist; create it from trusted results with "
                         f"`bench check --baseline {path} --results DIR --update`")
    return load(path)


def update_baseline(fresh, path) -> int:
    """Replace the baseline at ``path`` by the rows of ``fresh`` (results columns only)."""
    rows = fresh.drop_duplicates("cell_id").sort_values(CHECK_KEYS + ["seed"], kind="stable")
    rows = rows[[column for column in COLUMNS if column in rows.columns]]
    atomic_write_text(Path(path), rows.to_csv(index=False))
    return len(rows)
