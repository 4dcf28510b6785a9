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
    """One rich table per (training dataset, tested dataset, way): methods × shots; several
    seeds: one line per seed."""
    from rich.markup import escape
    from rich.table import Table

    tables = []
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
        table = Table(title=f"{dataset}, {way}-way: accuracy % ± 95% CI "
                            f"({int(group['test_episodes'].iloc[0])} test episodes)",
                      caption=caption)
        table.add_column("method", overflow="fold")
        if several:
            table.add_column("seed", justify="right", no_wrap=True)
        for shot in shots:
            table.add_column(f"{shot}-shot", justify="right", no_wrap=True)
        table.add_column("train time", justify="right", no_wrap=True)
        for method, rows in group.groupby("method", sort=False):
            texts = []
            for shot in shots:
                hit = rows[rows["shot"] == shot]
                texts.append("\n".join(" / ".join(f"{r.acc:.2f} ± {r.ci95:.2f}" for r in
                                                   hit[hit["seed"] == seed].itertuples()) or "-"
                                        for seed in seeds))
            labels = ["\n".join(map(str, seeds))] if several else []
            table.add_row(escape(str(method)), *labels, *texts,
                          f"{training_seconds(rows):.0f} s", end_section=several)
        tables.append(table)
    return tables
