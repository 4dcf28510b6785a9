"""`bench run`: train and evaluate every (method, way, shot, seed) cell and append its results."""

from __future__ import annotations

import click

from bench.plan.presets import PRESETS


@click.command("run")
@click.option("--methods", default="trm,protonet,cosine", show_default=True,
              help="Comma-separated methods; NAME(key=value,...) sets parameters.")
@click.option("--dataset", default="glyphs", show_default=True,
              help="Dataset (`bench list` shows all; real ones need --data-root).")
@click.option("--dataset-option", "-D", "dataset_options", multiple=True, metavar="KEY=VALUE",
              help="Dataset parameter, e.g. -D split=lake (repeatable).")
@click.option("--test-dataset", default=None,
              help="Cross-domain: test the models trained on --dataset (stored by an earlier "
                   "run, never trained here) on this dataset's test classes.")
@click.option("--test-dataset-option", "-T", "test_dataset_options", multiple=True,
              metavar="KEY=VALUE", help="Parameter of --test-dataset, e.g. -T split=closer-look.")
@click.option("--test-data-root", default=None, help="Root of --test-dataset [--data-root].")
@click.option("--models-from", default=None, type=click.Path(),
              help="Cross-domain: the --out DIR of the run that trained the models [--out].")
@click.option("--ways", default="5", show_default=True, help="Comma-separated test ways.")
@click.option("--shots", default="1,5", show_default=True, help="Comma-separated shots.")
@click.option("--query", default="15", show_default=True,
              help="Test queries per class (comma-separated: a grid).")
@click.option("--test-episodes", default="600", show_default=True,
              help="Fixed test episodes per cell, the same for every method (≥ 2).")
@click.option("--seed", "seeds", default="0", show_default=True,
              help="Training seed(s), comma-separated: initialisation, training and validation "
                   "episodes, and (without --test-seed) the test episodes.")
@click.option("--test-seed", default=None,
              help="Seed of the test episodes, the same for every training seed, so that runs "
                   "pair on identical episodes (multi-seed studies) [default: each cell's seed].")
@click.option("--train-episodes", default="500", show_default=True,
              help="Training episodes per model, or per training shot (1:60000,5:40000); 0: "
                   "evaluate the untrained network.")
@click.option("--train-way", default=None,
              help="Training way, or SHOT:WAY per test shot (1:30,5:20) [default: the test way].")
@click.option("--train-shot", default=None,
              help="Training shot(s), comma-separated: a grid [default: the test shot].")
@click.option("--train-query", default="15", show_default=True,
              help="Queries per class in training episodes (comma-separated: a grid).")
@click.option("--lr", default=1e-3, show_default=True, type=float, help="Adam learning rate.")
@click.option("--lr-step", default=2000, show_default=True, type=int,
              help="Episodes between learning-rate decays.")
@click.option("--lr-gamma", default=0.5, show_default=True, type=float,
              help="Learning-rate factor at each decay.")
@click.option("--pretrain-epochs", default=0, show_default=True, type=int,
              help="Epochs of supervised pre-training of the backbone on all base classes "
                   "before episodic training (0: none; baseline and baselinepp need it; Chen et "
                   "al.: 5 on Omniglot, 400 on miniImageNet). Stored once per backbone, dataset "
                   "and seed in OUT/pretrained.")
@click.option("--pretrain-batch", default=16, show_default=True, type=int,
              help="Images per pre-training batch.")
@click.option("--pretrain-lr", default=1e-3, show_default=True, type=float,
              help="Adam learning rate of pre-training.")
@click.option("--val-every", default=100, show_default=True, type=int,
              help="Training episodes between validations (0: none; the best weights are kept).")
@click.option("--val-episodes", default=100, show_default=True, type=int,
              help="Episodes per validation.")
@click.option("--plateau-window", default=0, show_default=True, type=int,
              help="Budget rule: stop training once the best validation accuracy has risen by "
                   "at most --plateau-delta points over this many episodes, all of them after "
                   "the last --lr-step decay before the cap (--train-episodes is then the cap; "
                   "0: always train all of them).")
@click.option("--plateau-delta", default=0.5, show_default=True, type=float,
              help="Points of validation accuracy that count as still learning (--plateau-window).")
@click.option("--checkpoint-every", default=100, show_default=True, type=int,
              help="Training episodes between resumable checkpoints (0: none).")
@click.option("--out", "out_dir", default="runs", show_default=True, type=click.Path(),
              help="Results directory (results.csv, per_episode/, logs/, configs/).")
@click.option("--data-root", default=None, help="Dataset root [env FEWSHOT_BENCH_DATA].")
@click.option("--cache-dir", default=None,
              help="Preprocessed-data cache [env FEWSHOT_BENCH_CACHE, ~/.cache/fewshot-bench].")
@click.option("--download", is_flag=True, help="Download the dataset if it is missing.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, ...")
@click.option("--prefetch", default="0", show_default=True,
              help="Training episodes to sample ahead in a worker process (0: sample inline). "
                   "Same episodes either way; helps where cores are spare (GPU machines).")
@click.option("--precision", default="auto", show_default=True,
              help="Training arithmetic: fp32, bf16 (bfloat16 autocast; evaluation stays fp32), "
                   "or auto: bf16 where the device computes it natively (CUDA with bf16, CPUs "
                   "with AMX or AVX512-BF16), else fp32.")
@click.option("--threads", default=None, type=int, help="torch CPU threads [default: torch's].")
@click.option("--executor", default="local", show_default=True, type=click.Choice(["local", "ray"]),
              help="local: the cells one after the other here; ray: one Ray task per training "
                   "(docs/ray.md).")
@click.option("--cpus-per-task", default=1.0, show_default=True, type=float,
              help="Ray: CPUs (and torch threads) of each task.")
@click.option("--gpus-per-task", default=None, type=float,
              help="Ray: GPUs of each task, fractions share one (0.25) [1 with --device cuda].")
@click.option("--ray-address", default=None,
              help="Ray: HOST:PORT of a cluster (`ray start --head`), or auto [env RAY_ADDRESS; "
                   "else a new local Ray].")
@click.option("--storage", default=None, type=click.Path(),
              help="Ray: models/ and checkpoints/, on a filesystem every worker reaches [--out].")
@click.option("--tensorboard", default=None, type=click.Path(),
              help="Also write each finished cell's training curves (loss, training and "
                   "validation accuracy, learning rate) as TensorBoard event files under this "
                   "folder, one run per cell (pip install 'fewshot-bench[tensorboard]').")
@click.option("--ci", "ci_method", default="normal", show_default=True,
              type=click.Choice(["normal", "t"]), help="95% CI: 1.96·σ/√n or Student t.")
@click.option("--force", is_flag=True, help="Redo finished cells instead of skipping them.")
@click.option("--dry-run", is_flag=True,
              help="Print the cells, which models would be trained, reused or shared, the "
                   "pre-trainings and a time estimate; run nothing.")
@click.option("--preset", default=None, metavar="NAME",
              help=f"Named protocol: {', '.join(PRESETS)}; options given on the command line "
                   "override it.")
@click.pass_context
def run_command(ctx: click.Context, **options) -> None:
    """Train and evaluate each cell; print a table and append rows to OUT/results.csv."""
    from bench.execute.local import execute
    from bench.plan.cells import plan_cells
    from bench.plan.presets import apply_preset

    explicit = {name for name in options
                if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT}
    dry_run, preset = options.pop("dry_run"), options["preset"]
    options = apply_preset(options.pop("preset"), options, explicit)
    from bench.interrupt import STOP
    from bench.plan.executor import plan_executor
    from bench.plan.options import check_threads

    check_threads(options["threads"])
    ray_settings = plan_executor(options, explicit)
    executor = None
    if ray_settings is not None:
        from bench.execute.ray.executor import RayExecutor

        executor = RayExecutor(ray_settings)
    cells, run_options = plan_cells(options)
    if dry_run:
        from bench.plan.dry_run import print_plan

        print_plan(cells, run_options, preset, options["threads"])
        return
    with STOP.installed_handlers():
        outcome, seconds = execute(cells, run_options, threads=options["threads"],
                                   executor=executor)
    from bench.cli.run_summary import print_summary

    print_summary(cells, outcome, run_options, seconds)
    if outcome.failed:
        raise SystemExit(1)
