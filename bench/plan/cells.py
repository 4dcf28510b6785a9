"""`bench run`'s options → the cells to run and the options they run under (`plan_cells`)."""

from __future__ import annotations

from dataclasses import replace

from bench.core.cells import RunOptions
from bench.core.config import Cell, TrainConfig, parse_assignments, parse_methods
from bench.core.precision import resolve_precision
from bench.data import data_root
from bench.errors import BenchError
from bench.plan.cross_domain import check_cross_cells
from bench.plan.options import (
    MAX_SEED,
    check_device,
    check_per_shot,
    check_pretraining,
    count_option,
    distinct,
    episodes_for,
    int_list,
    out_dir_writable,
    path_option,
    per_shot_ways,
    storage_dir,
    tensorboard_dir,
    test_seed_option,
    train_episodes,
)
from bench.registry import DATASETS, METHODS


def plan_cells(options: dict) -> tuple[list[Cell], RunOptions]:
    methods = parse_methods(options["methods"])
    DATASETS.get(options["dataset"])
    dataset_params = parse_assignments(",".join(options["dataset_options"]),
                                       f"dataset {options['dataset']}")
    train_shot = options["train_shot"]
    train_ways = per_shot_ways(options["train_way"])
    episodes_by_shot = train_episodes(options["train_episodes"])
    train_shots = (distinct(int_list(train_shot, "--train-shot"), "--train-shot")
                   if train_shot is not None else [None])
    train_queries = distinct(int_list(options["train_query"], "--train-query"), "--train-query")
    train = TrainConfig(
        episodes=0, way=train_ways.get(None), shot=train_shots[0], query=train_queries[0],
        lr=options["lr"], lr_step=options["lr_step"], lr_gamma=options["lr_gamma"],
        val_every=options["val_every"], val_episodes=options["val_episodes"],
        checkpoint_every=options["checkpoint_every"],
        precision=resolve_precision(options["precision"], options["device"]),
        pretrain_epochs=options.get("pretrain_epochs", 0),
        pretrain_batch=options.get("pretrain_batch", 16),
        pretrain_lr=options.get("pretrain_lr", 1e-3),
        plateau_window=options.get("plateau_window", 0),
        plateau_delta=options.get("plateau_delta", 0.5))
    train.validate()
    queries = distinct(int_list(options["query"], "--query"), "--query")
    test_episodes = count_option(options["test_episodes"], "--test-episodes")
    if test_episodes < 2:
        raise BenchError("--test-episodes must be at least 2 (a 95% CI needs two episodes); "
                         "write e.g. --test-episodes 600")
    seeds = distinct(int_list(options["seeds"], "--seed", minimum=0, example="0,1,2",
                              maximum=MAX_SEED), "--seed")
    test_seed = test_seed_option(options.get("test_seed"))
    ways = distinct(int_list(options["ways"], "--ways", minimum=2, example="5,20"), "--ways")
    shots = distinct(int_list(options["shots"], "--shots"), "--shots")
    check_per_shot(train_ways, shots)
    tested = test_dataset(options)
    check_pretraining(methods, train)
    cells = [
        Cell(method, options["dataset"], dataset_params, way, shot, query, test_episodes, seed,
             replace(train, episodes=episodes_for(episodes_by_shot, trained_shot or shot)
                     if METHODS.get(method.name).episodic else 0,
                     way=train_ways.get(shot, train.way), shot=trained_shot, query=train_query),
             *(tested or (None, ())), test_seed=None if test_seed == seed else test_seed)
        for seed in seeds for way in ways for shot in shots for query in queries
        for trained_shot in train_shots for train_query in train_queries for method in methods
    ]
    cells[0].dataset_config()  # unknown dataset option → error before anything runs
    cells[0].tested_config()
    run_options = RunOptions(out_dir=out_dir_writable(options["out_dir"]),
                             data_root=data_root(options["data_root"]),
                             cache_dir=options["cache_dir"], download=options["download"],
                             device=check_device(options["device"]), force=options["force"],
                             prefetch=count_option(options["prefetch"], "--prefetch",
                                                   allow_zero=True),
                             ci_method=options["ci_method"],
                             test_data_root=path_option(options.get("test_data_root")),
                             models_from=path_option(options.get("models_from")),
                             storage=storage_dir(options.get("storage")),
                             tensorboard=tensorboard_dir(options.get("tensorboard")))
    check_cross_cells(cells, run_options)
    return cells, run_options


def test_dataset(options: dict) -> tuple:
    """(test dataset, its parameters) for Cell, or () where the cells test on --dataset."""
    name = options.get("test_dataset")
    if not name:
        if any(options.get(name) for name in ("test_dataset_options", "test_data_root",
                                                  "models_from")):
            raise BenchError("-T, --test-data-root and --models-from apply to --test-dataset; "
                             "add --test-dataset NAME or drop them")
        return ()
    DATASETS.get(name)
    return name, parse_assignments(",".join(options["test_dataset_options"]),
                                   f"test dataset {name}")


