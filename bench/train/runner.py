"""Episodic training: plain functions, no printing (progress is a callback)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import torch

from bench.core.config import Cell
from bench.core.episodes import Episode, EpisodeSampler, episode_feed
from bench.core.model import NumericalFault, Progress, to_float
from bench.data import ImageSet
from bench.errors import BenchError
from bench.methods.base import TrainingEpisode


@dataclass
class TrainState:
    """Everything needed to continue training exactly where it stopped."""

    episode: int = 0
    best_accuracy: float = -1.0
    best_episode: int = 0
    best_weights: dict | None = None
    log: list[dict] = field(default_factory=list)


def make_optimizer(model: torch.nn.Module, cell: Cell):
    optimizer = torch.optim.Adam(model.parameters(), lr=cell.train.lr)
    step = cell.train.lr_step or 10**12
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step, gamma=cell.train.lr_gamma)
    return optimizer, scheduler


def train_step(model, optimizer, scheduler, pixels: torch.Tensor, episode: Episode,
               device: torch.device, augment: Callable | None,
               precision: str = "fp32", base_labels: torch.Tensor | None = None
               ) -> tuple[float, float]:
    """One episode of training on its uint8 images ``pixels`` (support rows, then query rows);
    returns (loss, query accuracy). The loss is the method's ``training_loss`` (cross-entropy
    unless the method defines its own); ``base_labels`` are the images' labels among all base
    classes, for auxiliary losses. ``precision="bf16"`` runs the forward pass under bfloat16
    autocast (AMX/AVX-512-BF16 CPUs, recent GPUs)."""
    if not getattr(model, "episodic", True):
        raise BenchError(f"{model.registry_name} is not trained on episodes (it is pre-trained "
                         "on the base classes); plan it with 0 training episodes")
    model.train()
    batch = to_float(pixels, device)
    if augment is not None:
        batch = augment(batch)
    n_support = episode.support.numel()
    targets = episode.query_labels().to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        features = model.embed(batch)
        loss, logits = model.training_loss(TrainingEpisode(
            features[:n_support], episode.support_labels().to(device), features[n_support:],
            targets, episode.way, None if base_labels is None else base_labels.to(device)))
    loss, logits = loss.float(), logits.float()
    if not torch.isfinite(loss):
        raise NumericalFault(f"training loss is {loss.item()}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    accuracy = (logits.argmax(1) == targets).float().mean()
    return loss.item(), accuracy.item()


def train(model, optimizer, scheduler, sampler: EpisodeSampler, images: ImageSet,
          state: TrainState, cell: Cell, device: torch.device, *,
          validate: Callable[[], float] | None = None, augment: Callable | None = None,
          progress: Progress | None = None, checkpoint: Callable[[], None] | None = None,
          should_stop: Callable[[], bool] = lambda: False, prefetch: int = 0) -> TrainState:
    """Train from ``state.episode`` to ``cell.train.episodes``; keeps the best-validated weights.

    ``checkpoint`` is called every ``checkpoint_every`` episodes and when ``should_stop`` turns
    true (then training returns early with ``state.episode`` < the total). ``prefetch`` > 0
    samples episodes that far ahead in a worker process (same episodes; see ``episode_feed``).
    """
    if state.episode >= cell.train.episodes:
        return state
    with episode_feed(sampler, images.images, prefetch, device.type == "cuda") as feed:
        train_loop(model, optimizer, scheduler, feed, state, cell, device, validate, augment,
                   progress, checkpoint, should_stop, labels=torch.from_numpy(images.labels))
    return state


def train_loop(model, optimizer, scheduler, feed, state: TrainState, cell: Cell, device,
               validate=None, augment=None, progress: Progress | None = None, checkpoint=None,
               should_stop=lambda: False, labels: torch.Tensor | None = None) -> None:
    """``train`` on an open ``episode_feed`` (for callers that keep one across calls);
    ``labels``: the training split's labels (base classes), for methods' auxiliary losses."""
    progress = progress or Progress()
    total, config = cell.train.episodes, cell.train
    while state.episode < total:
        if checkpoint is not None and _validates(state.episode + 1, config, validate) \
                and config.checkpoint_every and state.episode % config.checkpoint_every:
            checkpoint()  # a stop during the (long) validation resumes from here
        episode, pixels = next(feed)
        loss, accuracy = train_step(model, optimizer, scheduler, pixels, episode, device,
                                    augment, config.precision,
                                    None if labels is None else labels[episode.indices()])
        state.episode += 1
        entry = {"episode": state.episode, "loss": loss, "train_acc": accuracy,
                 "val_acc": float("nan"), "lr": optimizer.param_groups[0]["lr"]}
        if _validates(state.episode, config, validate):
            entry["val_acc"] = validate()
            progress.validated(state.episode, entry["val_acc"])
            if entry["val_acc"] > state.best_accuracy:
                state.best_accuracy, state.best_episode = entry["val_acc"], state.episode
                state.best_weights = copy.deepcopy(model.state_dict())
        state.log.append(entry)
        progress.train_step(state.episode, total, loss)
        if plateaued(state.log, config):
            break  # the budget rule: finished, not interrupted (no checkpoint needed)
        interval = config.checkpoint_every
        stopping = should_stop()
        if checkpoint is not None and (stopping or (interval and state.episode % interval == 0)):
            checkpoint()
        if stopping:
            break


def plateaued(log: list[dict], config) -> bool:
    """The budget rule, checked at the last log entry when it is a validation: the best
    validation accuracy so far has risen by at most ``plateau_delta`` points over the last
    ``plateau_window`` episodes (best now − best at or before episode e − window ≤ delta). Never
    before a full window has passed at the schedule's final learning rate (``final_rate_from``):
    a method that flattens early must still get the lower rates that a method still learning
    reaches. Off when ``plateau_window`` is 0."""
    window = getattr(config, "plateau_window", 0)
    if not window or not log or log[-1]["val_acc"] != log[-1]["val_acc"]:  # NaN: no validation
        return False
    now = log[-1]["episode"]
    if now - window < final_rate_from(config):
        return False
    validations = [(entry["episode"], entry["val_acc"]) for entry in log
                   if entry["val_acc"] == entry["val_acc"]]
    before = [acc for episode, acc in validations if episode <= now - window]
    if not before:
        return False
    best_now = max(acc for _, acc in validations)
    return 100.0 * (best_now - max(before)) <= config.plateau_delta + 1e-9


def final_rate_from(config) -> int:
    """The episode after which training runs at its last learning rate before the cap: the last
    decay of the step schedule before ``episodes`` (0 without decays)."""
    step, cap = getattr(config, "lr_step", 0), getattr(config, "episodes", 0)
    if not step or getattr(config, "lr_gamma", 1.0) == 1.0 or cap <= step:
        return 0
    return (cap - 1) // step * step


def _validates(episode: int, config, validate) -> bool:
    """Whether training episode ``episode`` (1-based) is followed by a validation."""
    return validate is not None and bool(config.val_every) and (
        episode % config.val_every == 0 or episode == config.episodes)


