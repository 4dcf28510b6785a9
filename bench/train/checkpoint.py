"""Resumable training state of an unfinished cell, written atomically to DIR/checkpoints/."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from bench.core.config import Cell
from bench.core.models import read_cell_payload, write_payload
from bench.train.runner import TrainState


def save(path: Path, cell: Cell, model, optimizer, scheduler, sampler, state: TrainState,
         train_seconds: float) -> None:
    payload = {
        "config": cell.training(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "sampler": sampler.state(),
        "torch_rng": torch.get_rng_state(),
        "state": asdict(state),
        "train_seconds": train_seconds,
    }
    write_payload(path, payload)


def load(path: Path, cell: Cell, model, optimizer, scheduler, sampler) -> tuple[TrainState, float]:
    """Restore everything saved by ``save``; returns (train state, train seconds so far)."""
    payload = read_cell_payload(path, cell, "checkpoint")
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    sampler.set_state(payload["sampler"])
    torch.set_rng_state(payload["torch_rng"])
    return TrainState(**payload["state"]), payload["train_seconds"]
