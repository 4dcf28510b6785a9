"""`bench check`: fresh results against a committed baseline, for CI regression of accuracy.

The rule, per cell (method, dataset, split, backbone, way, shot):

    regression  ⇔  baseline_acc − new_acc > sqrt(ci_baseline² + ci_new²) + tolerance

with accuracies and 95% CI half-widths in percent. The right-hand side is the 95% CI half-width of
the difference of two independent estimates, so a cell fails when that interval lies entirely below
zero: the drop is larger than measurement noise explains. For runs on the same episodes the rule is
conservative (the paired difference has a narrower CI), so it does not cry wolf. When a cell has
several seeds, its accuracy is the mean of the seeds' ``acc``.

Where the baseline cell has S ≥ 2 training runs, the noise that matters is that of training: the
allowed drop is the 95% prediction half-width of the difference between the baseline mean and the
mean of the fresh runs, from the baseline's between-run spread,

    t(0.975, S − 1) · sd_baseline · sqrt(1/S + 1/S_fresh)

(each run's accuracy already holds its episode noise), and the verdict line says "over runs".
With a one-run baseline only the episode CIs are known: sqrt(ci_baseline² + ci_new²), where a
several-seed fresh cell's CI is sqrt(Σ ci_i²) / k; the line says "episode CIs".

A cell of the baseline that the fresh results lack is a failure too (a method or setting silently
dropped from CI is a regression of coverage), unless ``allow_missing``. A cell only in the fresh
results passes ("new"). Improvements pass.

The baseline is a results CSV (the columns of ``bench.results.COLUMNS``); only ``acc`` and ``ci95``
are compared, so it needs no per-episode files. ``update_baseline`` rewrites it from fresh results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bench import stats
from bench.errors import BenchError
from bench.report.rows import pooling_rows
from bench.results import COLUMNS, atomic_write_text, load

CHECK_KEYS = ["method", "dataset", "split", "backbone", "way", "shot"]


@dataclass(frozen=True)
class CellCheck:
    """The verdict on one cell: ``status`` is ok, regression, missing, missing-allowed, new,
    invalid (an accuracy that is not a number in [0, 100]) or not-comparable (another protocol:
    ``detail`` says which settings differ)."""

    key: tuple
    status: str
    baseline_acc: float = math.nan
    baseline_ci: float = math.nan
    new_acc: float = math.nan
    new_ci: float = math.nan
    tolerance: float = 0.0  # extra points allowed (training variance, another machine's floats)
    # Over runs (a baseline of S ≥ 2 seeds): the prediction half-width from its between-run SD;
    # NaN: the episode CIs decide.
    run_allowance: float = math.nan
    baseline_seeds: int = 1
    detail: str = ""

    @property
    def drop(self) -> float:
        return self.baseline_acc - self.new_acc

    @property
    def rule(self) -> str:
        if math.isnan(self.run_allowance):
            return "episode CIs: baseline of one run"
        return f"over runs: between-run SD of the baseline's {self.baseline_seeds} runs"

    @property
    def allowed(self) -> float:
        if not math.isnan(self.run_allowance):
            return self.run_allowance + self.tolerance
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
        if self.status == "invalid":
            return f"INVALID {where}: baseline {base}, new {new}: {self.detail}"
        if self.status == "not-comparable":
            return f"NOT COMPARABLE {where}: {self.detail}"
        verdict = "REGRESSION" if self.status == "regression" else "ok"
        return (f"{verdict} {where}: baseline {base}, new {new}, drop {self.drop:+.2f} points "
                f"(allowed {self.allowed:.2f}, {self.rule})")


def cell_runs(frame) -> dict:
    """{cell key: (acc, ci95, seeds, between-run SD)}: the mean of the per-seed accuracies, the
    episode CI of that mean from the seeds' CIs, the number of seeds and the SD of their
    accuracies (NaN for one seed). A seed's several rows (test sets) count as one run."""
    frame = pooling_rows(frame, CHECK_KEYS)  # pool seeds, not experiments
    cells = {}
    for key, rows in frame.groupby(CHECK_KEYS, sort=True):
        runs = rows["seed"] if "seed" in rows.columns else rows.index  # no seed column: a row each
        per_seed = rows.groupby(runs)["acc"].mean().to_numpy(dtype=float)
        sd = float(per_seed.std(ddof=1)) if per_seed.size >= 2 else math.nan
        cells[tuple(key)] = (float(per_seed.mean()), stats.combined_ci(rows["ci95"]),
                             int(per_seed.size), sd)
    return cells


def run_allowance(baseline_seeds: int, sd: float, fresh_seeds: int) -> float:
    """95% prediction half-width of (baseline mean − fresh mean) from the baseline's between-run
    SD: t(0.975, S − 1) · sd · sqrt(1/S + 1/S_fresh); NaN for a one-run baseline."""
    from scipy import stats as scipy_stats

    if baseline_seeds < 2 or not sd > 0:  # one run, or runs that agree to the last digit:
        return math.nan  # no spread to go by; the episode CIs decide
    return float(scipy_stats.t.ppf(0.975, baseline_seeds - 1) * sd
                 * math.sqrt(1 / baseline_seeds + 1 / max(fresh_seeds, 1)))


def check(baseline, fresh, allow_missing: bool = False, tolerance: float = 0.0
          ) -> list[CellCheck]:
    """Verdicts for every cell of either frame (results rows), in cell order.

    ``tolerance`` (points) is added to the allowed drop: the episode CIs do not cover the
    variance of training itself, which a run on another machine (other float rounding) shows.
    """
    if not math.isfinite(tolerance) or tolerance < 0:
        raise BenchError(f"--tolerance must be a finite number of points ≥ 0, got {tolerance}")
    base_cells, new_cells = cell_runs(baseline), cell_runs(fresh)
    base_protocols, new_protocols = cell_protocols(baseline), cell_protocols(fresh)
    verdicts = []
    for key in sorted(set(base_cells) | set(new_cells)):
        if key not in new_cells:
            verdicts.append(CellCheck(key, "missing" if not allow_missing else "missing-allowed",
                                      *base_cells[key][:2]))
            continue
        if key not in base_cells:
            verdicts.append(CellCheck(key, "new", math.nan, math.nan, *new_cells[key][:2]))
            continue
        (base_acc, base_ci, base_seeds, base_sd), (new_acc, new_ci, new_seeds, _) = (
            base_cells[key], new_cells[key])
        verdict = CellCheck(key, "ok", base_acc, base_ci, new_acc, new_ci, tolerance,
                            run_allowance(base_seeds, base_sd, new_seeds), base_seeds)
        differing = protocol_difference(base_protocols.get(key), new_protocols.get(key))
        invalid = [f"{name} accuracy {value!r} is not a number in [0, 100]"
                   for name, value in (("baseline", base_acc), ("fresh", new_acc))
                   if not 0.0 <= value <= 100.0]  # NaN fails the comparison too
        if invalid:
            verdict = replace(verdict, status="invalid", detail="; ".join(invalid))
        elif differing:
            verdict = replace(verdict, status="not-comparable", detail=differing)
        elif not verdict.drop <= verdict.allowed:  # a NaN CI or drop fails too
            verdict = replace(verdict, status="regression")
        verdicts.append(verdict)
    return verdicts


# What defines a cell's protocol beyond its key: a fresh result measured another way (2 test
# episodes of 1 query after 1 training episode) is not comparable with the baseline's.
PROTOCOL = ("query", "test_episodes", "train_episodes", "train_way", "train_shot", "train_query")


def cell_protocols(frame) -> dict:
    """{cell key: {setting: sorted values}} of the PROTOCOL columns a frame has."""
    frame = pooling_rows(frame, CHECK_KEYS)
    columns = [column for column in PROTOCOL if column in frame.columns]
    protocols = {}
    for key, rows in frame.groupby(CHECK_KEYS, sort=True):
        protocols[tuple(key)] = {column: sorted({_setting_text(value) for value in rows[column]
                                                 if value == value})
                                 for column in columns}
    return protocols


def _setting_text(value) -> str:
    """15, 15.0 and "15" alike (a CSV column with an empty cell reads as floats)."""
    try:
        return format(float(value), "g")
    except (TypeError, ValueError):
        return str(value)


def protocol_difference(baseline: dict | None, fresh: dict | None) -> str:
    """"query 15 in the baseline, 1 here; ..." for the settings both know and that differ."""
    if not baseline or not fresh:
        return ""
    differing = [f"{name} {'/'.join(baseline[name])} in the baseline, {'/'.join(fresh[name])} "
                 "here" for name in PROTOCOL
                 if name in baseline and name in fresh and baseline[name] and fresh[name]
                 and baseline[name] != fresh[name]]
    return "; ".join(differing)


def rule_words(verdicts: list[CellCheck]) -> str:
    """The rule(s) the compared cells used, in words, for the summary line."""
    rules = {v.rule.split(":")[0] for v in compared(verdicts)}
    words = {"over runs": "t(0.975, S-1)·sd_runs·sqrt(1/S + 1/S_new) (multi-seed baseline cells)",
             "episode CIs": "sqrt(ci_baseline² + ci_new²) (one-seed baseline cells)"}
    return " or ".join(words[rule] for rule in sorted(rules)) or "the CIs"


def failed(verdicts: list[CellCheck]) -> list[CellCheck]:
    return [v for v in verdicts if v.status in ("regression", "missing", "invalid",
                                                "not-comparable")]


def compared(verdicts: list[CellCheck]) -> list[CellCheck]:
    """The cells in both the baseline and the fresh results (a check of none proves nothing)."""
    return [v for v in verdicts if v.status in ("ok", "regression")]


def counts(verdicts: list[CellCheck]) -> str:
    """"2 compared, 1 missing, 3 new": how many cells of each kind."""
    kinds = {"compared": len(compared(verdicts)),
             "missing": sum(v.status.startswith("missing") for v in verdicts),
             "new": sum(v.status == "new" for v in verdicts),
             "invalid": sum(v.status == "invalid" for v in verdicts),
             "not comparable": sum(v.status == "not-comparable" for v in verdicts)}
    return ", ".join(f"{count} {kind}" for kind, count in kinds.items()
                     if count or kind in ("compared", "missing", "new"))


def load_baseline(path) -> object:
    """The baseline rows; a BenchError that says how to create the file if it is absent."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"baseline {path} does not exist; create it from trusted results with "
                         f"`bench check --baseline {path} --results DIR --update`")
    return load(path)


def baseline_changes(old, fresh, tolerance: float = 0.0) -> tuple[list[str], list[str]]:
    """What replacing baseline rows ``old`` by ``fresh`` changes: (every change as a line,
    the lines of changes that lose coverage or accuracy: dropped cells, cells now worse than
    the old baseline allows, invalid accuracies)."""
    verdicts = check(old, fresh, tolerance=tolerance)
    lines, losses = [], []
    for verdict in verdicts:
        method, dataset, split, backbone, way, shot = verdict.key
        where = f"{method} on {dataset} {way}-way {shot}-shot ({split}, {backbone})"
        if verdict.status == "new":
            lines.append(f"added {where}: {verdict.new_acc:.2f}")
        elif verdict.status.startswith("missing"):
            line = f"dropped {where} (baseline {verdict.baseline_acc:.2f})"
            lines.append(line)
            losses.append(line)
        else:
            line = (f"moved {where}: {verdict.baseline_acc:.2f} → {verdict.new_acc:.2f} "
                    f"({verdict.new_acc - verdict.baseline_acc:+.2f} points)")
            if verdict.status != "ok":
                line += f" [{verdict.status}: {verdict.detail or 'beyond its noise'}]"
                losses.append(line)
            lines.append(line)
    return lines, losses


def update_baseline(fresh, path, accept_losses: bool = False,
                    tolerance: float = 0.0) -> tuple[int, list[str]]:
    """Replace the baseline at ``path`` by the rows of ``fresh`` (results columns only);
    (rows written, the change lines). Refuses (BenchError, nothing written) when the change
    drops a cell or lowers one beyond its noise, unless ``accept_losses``."""
    path = Path(path)
    changes = []
    if path.is_file():
        changes, losses = baseline_changes(load(path), fresh, tolerance)
        if losses and not accept_losses:
            shown = "; ".join(losses[:5]) + (f"; and {len(losses) - 5} more"
                                             if len(losses) > 5 else "")
            raise BenchError(f"--update would lose what {path} holds ({shown}); nothing "
                             "written: add --accept-losses to replace it anyway")
    rows = fresh.drop_duplicates("cell_id").sort_values(CHECK_KEYS + ["seed"], kind="stable")
    rows = rows[[column for column in COLUMNS if column in rows.columns]]
    atomic_write_text(path, rows.to_csv(index=False))
    return len(rows), changes
