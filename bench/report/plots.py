"""Figures for papers: accuracy vs shots, grouped bars per dataset, training curves.

Built on ``matplotlib.figure.Figure`` (no pyplot), so writing files never changes the backend of a
notebook that imports this module; a notebook can also display the Figure a ``*_figure`` function
returns. ``write_plots`` saves every figure as PNG (150 dpi) and SVG.

Every method keeps one colour across all figures (tab10, methods sorted by name; tab20 when more
than ten methods share a report, so no two share a colour up to twenty).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from bench.errors import BenchError
from bench.report.rows import CELL_KEYS, GROUP_KEYS, pooling_rows
from bench.report.summary import summarize
from bench.results import log_path

DPI = 150


def _figure(width: float = 6.4, height: float = 4.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def legend_width(labels) -> float:
    """Inches a legend beside the axes needs for these labels (long variant labels such as
    ``trm(temperature=fixed,tau=1.0)`` would otherwise squeeze the axes and clip the title)."""
    return 0.6 + 0.075 * max((len(str(label)) for label in labels), default=0)


def method_colors(methods) -> dict:
    from matplotlib import colormaps

    names = sorted(set(methods))
    palette = colormaps["tab10" if len(names) <= 10 else "tab20"].colors
    return {method: palette[i % len(palette)] for i, method in enumerate(names)}


def _slug(text) -> str:
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", str(text)).strip("_")


def _setting(key: dict, summary) -> list[str]:
    """split and backbone, where the results hold more than one of them (else they go unsaid)."""
    return [str(key[k]) for k in ("split", "backbone") if summary[k].nunique() > 1 and key.get(k)]


def accuracy_vs_shots_figure(summary, key: dict, colors: dict | None = None):
    """Accuracy (%) vs shots, one line with 95% CI bars per method, for one (dataset, way).

    ``summary``: from ``bench.report.summary.summarize``; ``key``: {"dataset": ..., "way": ...},
    plus "split"/"backbone" where the summary holds several.
    """
    colors = colors or method_colors(summary["method"])
    table = summary
    for column in GROUP_KEYS:
        if column in key:
            table = table[table[column] == key[column]]
    shots = sorted(table["shot"].unique())
    methods = sorted(table["method"].unique())
    figure = _figure(4.6 + legend_width(methods), 4.0)
    axes = figure.add_subplot()
    for index, method in enumerate(methods):
        rows = table[table["method"] == method].sort_values("shot")
        dodge = 1.0 + 0.025 * (index - (len(methods) - 1) / 2)  # keeps CI bars apart
        axes.errorbar(rows["shot"] * dodge, rows["acc"], yerr=rows["ci95"], label=method,
                      color=colors[method], marker="o", markersize=4, capsize=3, linewidth=1.5)
    axes.set_xscale("log")
    axes.set_xticks(shots, [str(shot) for shot in shots])
    axes.minorticks_off()
    axes.set_xlim(min(shots) / 1.4, max(shots) * 1.4)
    axes.set_xlabel("shots per class")
    axes.set_ylabel("test accuracy (%)")
    title = ", ".join([str(key["dataset"]), f"{key['way']}-way", *_setting(key, summary)])
    axes.set_title(f"{title}\nmean ± 95% CI", fontsize="medium")  # two lines: never clipped
    axes.grid(True, axis="y", alpha=0.3)
    axes.legend(title="method", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return figure


def bars_figure(summary, key: dict, colors: dict | None = None):
    """Grouped bars per dataset (one bar per method, 95% CI whiskers); ``key``: {"way", "shot"}."""
    colors = colors or method_colors(summary["method"])
    table = summary[(summary["way"] == key["way"]) & (summary["shot"] == key["shot"])]
    table = table.assign(dataset=bar_groups(table))
    datasets = sorted(table["dataset"].unique())
    methods = sorted(table["method"].unique())
    width = 0.8 / len(methods)
    figure = _figure(max(3.6, 1.2 + 0.5 * len(datasets) * len(methods)) + legend_width(methods),
                     4.0)
    axes = figure.add_subplot()
    for index, method in enumerate(methods):
        rows = table[table["method"] == method].set_index("dataset").reindex(datasets)
        positions = np.arange(len(datasets)) + (index - (len(methods) - 1) / 2) * width
        axes.bar(positions, rows["acc"], width * 0.92, yerr=rows["ci95"], capsize=3,
                 color=colors[method], label=method)
    axes.set_xticks(np.arange(len(datasets)), datasets)
    axes.set_xlabel("dataset")
    axes.set_ylabel("test accuracy (%)")
    axes.set_ylim(0, min(100.0, float((table["acc"] + table["ci95"]).max()) * 1.1))
    axes.set_title(f"{key['way']}-way {key['shot']}-shot: mean ± 95% CI")
    axes.grid(True, axis="y", alpha=0.3)
    axes.legend(title="method", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return figure


def bar_groups(table):
    """Each row's group on the x axis: its dataset, with the split where one dataset has rows
    under several splits (miniImageNet with and without augmentation), so no method has two
    bars at one place."""
    if "split" not in table:
        return table["dataset"]
    splits = table.groupby("dataset")["split"].transform("nunique")
    return table["dataset"].where(splits <= 1,
                                  table["dataset"] + " (" + table["split"].astype(str) + ")")


def read_logs(frame) -> dict:
    """{(cell keys..., seed): log DataFrame} for the rows of ``frame`` that have a training log."""
    import pandas as pd

    logs = {}
    for _, row in frame.iterrows():
        path = log_path(Path(row["source_dir"]), row["cell_id"])
        if path.is_file():
            logs[row["cell_id"]] = pd.read_csv(path)
    return logs


def _band(axes, logs, column: str, color, label: str, scale: float = 1.0) -> int:
    """Mean over seeds as a line, min–max over seeds as a band, on the episodes logged.

    Series of more than 100 points are smoothed by a centred moving average (per-episode training
    loss is too noisy to read); returns the window used (1: none).
    """
    import pandas as pd

    values = pd.concat([log[["episode", column]].dropna() for log in logs])
    by_episode = values.groupby("episode")[column].agg(["mean", "min", "max"]) * scale
    window = max(1, len(by_episode) // 50) if len(by_episode) > 100 else 1
    by_episode = by_episode.rolling(window, center=True, min_periods=1).mean()
    axes.plot(by_episode.index, by_episode["mean"], color=color, label=label, linewidth=1.5,
              marker="o" if len(by_episode) < 30 else None, markersize=3)
    if len(logs) > 1:
        axes.fill_between(by_episode.index, by_episode["min"], by_episode["max"], color=color,
                          alpha=0.2, linewidth=0)
    return window


def curves_figure(cell_logs: dict, title: str, colors: dict, train_accuracy: bool = False):
    """Training loss and validation accuracy vs episode (and the training accuracy, where
    ``train_accuracy``); ``cell_logs``: {method: [log frames]}."""
    figure = _figure(13.0 if train_accuracy else 9.0, 3.6)
    panels = figure.subplots(1, 3 if train_accuracy else 2)
    loss_axes, val_axes = panels[0], panels[-1]
    window = 1
    for method, logs in sorted(cell_logs.items()):
        label = method + (f" ({len(logs)} seeds)" if len(logs) > 1 else "")
        window = max(window, _band(loss_axes, logs, "loss", colors[method], label))
        if train_accuracy:
            _band(panels[1], logs, "train_acc", colors[method], label, 100.0)
        in_percent = all(not log["val_acc"].max() > 1.0 for log in logs)
        _band(val_axes, logs, "val_acc", colors[method], label, 100.0 if in_percent else 1.0)
    smoothing = f" (moving avg., {window} points)" if window > 1 else ""
    loss_axes.set_ylabel("training loss" + smoothing)
    if train_accuracy:
        panels[1].set_ylabel("training accuracy (%)" + smoothing)
    val_axes.set_ylabel("validation accuracy (%)")
    for axes in panels:
        axes.set_xlabel("training episode")
        axes.grid(True, alpha=0.3)
    # The title starts over the panels and the legend sits beside them, centred, so a long
    # title never runs into the legend's heading.
    figure.suptitle(f"{title}: mean over seeds (band: min–max)", x=0.01, ha="left")
    handles, labels = val_axes.get_legend_handles_labels()
    figure.legend(handles, labels, title="method", loc="outside right center", frameon=False)
    return figure


def save(figure, stem: Path) -> list[Path]:
    """``stem``.png (150 dpi) and ``stem``.svg."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    figure.savefig(paths[0], dpi=DPI)
    figure.savefig(paths[1])
    return paths


def _curve_figures(frame, summary, colors, out_dir: Path) -> list[Path]:
    logs = read_logs(frame)
    paths = []
    keys = GROUP_KEYS + ["shot"]
    for key, cell in frame[frame["cell_id"].isin(logs)].groupby(keys, sort=True):
        key = dict(zip(keys, key))
        cell_logs = {m: [logs[c] for c in rows["cell_id"]] for m, rows in cell.groupby("method")}
        parts = [key["dataset"], *_setting(key, summary), f"{key['way']}way", f"{key['shot']}shot"]
        title = ", ".join([str(key["dataset"]), *_setting(key, summary),
                           f"{key['way']}-way {key['shot']}-shot"])
        figure = curves_figure(cell_logs, title, colors)
        paths += save(figure, out_dir / _slug("curves_" + "_".join(map(str, parts))))
    return paths


def writable_dir(out_dir) -> Path:
    """``out_dir``, created; a one-line BenchError where figures cannot be written there."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise BenchError(f"cannot write figures to {out_dir}: {error.strerror or error}; pass "
                         "--plots a folder you can write to") from None
    return out_dir


def write_plots(frame, out_dir, ci_method: str = "normal") -> list[Path]:
    """All figures for the results rows ``frame`` into ``out_dir``; returns the files written."""
    out_dir = writable_dir(out_dir)
    summary = summarize(frame, ci_method)
    frame = pooling_rows(frame, CELL_KEYS)  # the labels summarize gave them
    colors = method_colors(summary["method"])
    paths = []
    for key, _ in summary.groupby(GROUP_KEYS, sort=True):
        key = dict(zip(GROUP_KEYS, key))
        parts = [key["dataset"], *_setting(key, summary), f"{key['way']}way"]
        figure = accuracy_vs_shots_figure(summary, key, colors)
        paths += save(figure, out_dir / _slug("acc_vs_shot_" + "_".join(map(str, parts))))
    for (way, shot), _ in summary.groupby(["way", "shot"], sort=True):
        figure = bars_figure(summary, {"way": way, "shot": shot}, colors)
        paths += save(figure, out_dir / f"bars_{way}way_{shot}shot")
    return paths + _curve_figures(frame, summary, colors, out_dir)
