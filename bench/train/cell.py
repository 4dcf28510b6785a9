"""One cell's training: load its stored model, or pre-train and train it (resumably), keeping the
best-validated weights."""

from __future__ import annotations

import time

import torch

from bench import results
from bench.core import models
from bench.core.cells import Interrupted, RunOptions
from bench.core.config import Cell
from bench.core.episodes import EpisodeSampler, fixed_episodes
from bench.core.model import NumericalFault, Progress, build_model, data_shape
from bench.core.running import finish_running, write_running
from bench.data import DatasetAdapter
from bench.evaluate.episodic import evaluate
from bench.interrupt import STOP
from bench.train import checkpoint
from bench.train.pretrain import pretrain_into
from bench.train.runner import TrainState, make_optimizer, plateaued, train


def trained_model(cell: Cell, adapter: DatasetAdapter, options: RunOptions, progress: Progress,
                  should_stop, retrain: bool):
    """(model with its best-validated weights, training record); trains only when needed.

    A finished training is stored in STORAGE/models/<training_id>.pt, so cells that differ only in
    the test way, query or episode count (and reruns) reuse it.
    """
    device = torch.device(options.device)
    torch.manual_seed(cell.seed)
    train_set = adapter.load("train")
    model = build_model(cell, adapter.channels, **data_shape(train_set)).to(device)
    stored = models.model_path(options.storage_dir, cell)
    train_data = train_set.fingerprint()
    with results.locked(options.storage_dir, f"locks/{cell.training_id}.lock"):
        if stored.exists() and not retrain:
            return model, models.load_model(stored, cell, model, train_data)
        # --force retrains a shared pre-training once, in its preparation (bench.execute.jobs),
        # which runs before this, in another process on Ray: here it is only loaded (or trained
        # if absent).
        pretrained = pretrain_into(model, cell, train_set, options.storage_dir, device,
                                   adapter.train_augmentation(), should_stop, False, progress)
        trained = {**train_cell(cell, model, adapter, options, progress, should_stop, retrain),
                   **(pretrained or {}), "data_shape": data_shape(train_set),
                   "train_data": train_data}
        trained["train_seconds"] += trained.get("pretrain_seconds", 0.0)  # shared, counted whole
        with STOP.phase(f"saving the model of {cell.describe()}", defer=True):
            models.save_model(stored, cell, model, trained)
    return model, trained


def train_cell(cell: Cell, model, adapter: DatasetAdapter, options: RunOptions,
               progress: Progress, should_stop, retrain: bool) -> dict:
    device = torch.device(options.device)
    train_set = adapter.load("train")
    optimizer, scheduler = make_optimizer(model, cell)
    sampler = EpisodeSampler(train_set, cell.train_way, cell.train_shot, cell.train.query,
                             cell.seed)
    path = models.checkpoint_path(options.storage_dir, cell)
    state, seconds_before = TrainState(), 0.0
    if path.exists() and not retrain:
        state, seconds_before = checkpoint.load(path, cell, model, optimizer, scheduler, sampler)
    start = time.perf_counter()

    about = {"label": cell.describe(), "method": cell.method.label, "dataset": cell.dataset,
             "way": cell.train_way, "shot": cell.train_shot, "seed": cell.seed,
             "episodes": cell.train.episodes}

    def save_checkpoint():
        checkpoint.save(path, cell, model, optimizer, scheduler, sampler, state,
                        seconds_before + time.perf_counter() - start)
        write_running(options.storage_dir, cell.training_id, about, state.log)  # to watch it

    kept = f"its training checkpoint is saved in {path.parent}"
    try:
        with STOP.phase(f"training {cell.describe()}", kept, defer=True):
            train(model, optimizer, scheduler, sampler, train_set, state, cell, device,
                  validate=validation(model, adapter, cell, device),
                  augment=adapter.train_augmentation(), progress=progress,
                  checkpoint=save_checkpoint, should_stop=should_stop, prefetch=options.prefetch)
    except NumericalFault as fault:
        raise NumericalFault(f"{fault} at training episode {state.episode + 1}",
                             state.log[-20:]) from None
    if state.episode < cell.train.episodes and not plateaued(state.log, cell.train):
        raise Interrupted(f"stopped while training {cell.describe()}: {kept}; rerun the same "
                          "command to resume")
    if state.best_weights is not None:
        model.load_state_dict(state.best_weights)
    path.unlink(missing_ok=True)
    finish_running(options.storage_dir, cell.training_id)
    return {"best_episode": state.best_episode or state.episode, "log": state.log,
            "stop_episode": state.episode,
            "train_seconds": seconds_before + time.perf_counter() - start}


def validation(model, adapter: DatasetAdapter, cell: Cell, device):
    """Mean accuracy on fixed validation episodes of the training shape (None: no validation)."""
    if not cell.train.val_every or not cell.train.episodes:
        return None
    val_set = adapter.load("val")
    if val_set.n_classes < 2:
        return None
    way = min(cell.train_way, val_set.n_classes)
    shot = cell.train_shot
    query = min(cell.train.query, int(val_set.images_per_class().min()) - shot)
    if query < 1:
        return None
    episodes = fixed_episodes(val_set, way, shot, query, cell.train.val_episodes, cell.seed)
    kept = ("training resumes from the checkpoint saved just before this validation"
            if cell.train.checkpoint_every else "training restarts (--checkpoint-every 0)")

    def validate() -> float:
        with STOP.phase(f"validating {cell.describe()}", kept):
            return float(evaluate(model, val_set, episodes, device).mean())

    return validate
