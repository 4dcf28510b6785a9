"""What `bench run` prints when it ends: the finished cells' tables, then what ran, what was
skipped and what failed."""

from __future__ import annotations

import click

from bench.core.cells import RunOptions


def print_summary(cells, outcome, options: RunOptions, seconds: float) -> None:
    """The finished cells' table(s), then what ran, what was skipped and what failed."""
    from rich.console import Console

    from bench import results

    console = Console()
    if results.results_path(options.out_dir).exists():
        frame = results.load(options.out_dir)
        for table in summary_tables(frame[frame["cell_id"].isin({c.cell_id for c in cells})]):
            console.print(table)
    elsewhere = (f", {len(outcome.finished_elsewhere)} finished by another run meanwhile"
                 if outcome.finished_elsewhere else "")
    failed = f", {len(outcome.failed)} failed" if outcome.failed else ""
    click.echo(f"{len(outcome.rows)} cells run, {len(outcome.skipped)} already finished "
               f"(skipped; --force redoes them){elsewhere}{failed}, in {seconds:.0f} s. "
               f"Results: {results.results_path(options.out_dir)}")
    for cell, message in outcome.failed:
        click.echo(f"failed: {cell.describe()}: {message}")


def training_seconds(rows) -> float:
    """The training time of a method's rows, each training counted once: cells that share a
    model (a 1-shot model tested at 5-shot too) carry the same training's seconds."""
    keys = [column for column in ("seed", "train_way", "train_shot", "train_query",
                                  "train_episodes", "train_seconds") if column in rows]
    return float(rows.drop_duplicates(keys)["train_seconds"].sum())


def summary_tables(frame) -> list:
    """The rich tables of ``summary_grids``."""
    from bench.report.render import to_rich

    return [to_rich(grid) for grid in summary_grids(frame)]


def summary_grids(frame) -> list:
    """One Grid (bench.report.tables) per (training dataset, tested dataset, way): methods ×
    shots and the training time; several seeds: one line per seed."""
    from bench.report.render import Grid
    from bench.report.tables import acc_text, group_title

    grids = []
    frame = frame.assign(train_dataset=frame["train_dataset"].fillna(frame["dataset"])
                         if "train_dataset" in frame else frame["dataset"])
    for (trained, tested, way), group in frame.groupby(["train_dataset", "dataset", "way"],
                                                       sort=True):
        dataset = tested if trained == tested else f"{trained} → {tested}"
        shots = sorted(group["shot"].unique())
        seeds = sorted(group["seed"].unique())
        several = len(seeds) > 1
        caption = ("one line per training run (seed); each ± covers that run's test episodes: "
                   "`bench report` gives the mean and CI over runs" if several else
                   "one training run: the ± covers its test episodes")
        title = (f"{group_title({'dataset': dataset, 'way': way})}: accuracy % ± 95% CI "
                 f"({int(group['test_episodes'].iloc[0])} test episodes)")
        header = ["method", *(["seed"] if several else []),
                  *(f"{shot}-shot" for shot in shots), "train time"]
        lines = []
        for method, rows in group.groupby("method", sort=False):
            texts = []
            for shot in shots:
                hit = rows[rows["shot"] == shot]
                texts.append("\n".join(" / ".join(acc_text(r.acc, r.ci95) for r in
                                                   hit[hit["seed"] == seed].itertuples()) or "-"
                                        for seed in seeds))
            labels = ["\n".join(map(str, seeds))] if several else []
            lines.append([(text, False) for text in (str(method), *labels, *texts,
                                                     f"{training_seconds(rows):.0f} s")])
        grids.append(Grid(title, header, lines, [caption], sections=several))
    return grids
