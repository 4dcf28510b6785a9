"""Resumable training state of an unfinished cell, written atomically to DIR/checkpoints/."""

from __future__ import annotations

import io
import pickle
from dataclasses import asdict
from pathlib import Path

import torch

from bench.config import Cell
from bench.errors import BenchError
from bench.results import atomic_write_bytes
from bench.runner import TrainState


def checkpoint_path(out_dir: Path, cell: Cell) -> Path:
    return Path(out_dir) / "checkpoints" / f"{cell.cell_id}.pt"


def save(path: Path, cell: Cell, model, optimizer, scheduler, sampler, state: TrainState,
         train_seconds: float) -> None:
    payload = {
        "config": cell.resolved(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "sampler": sampler.state(),
        "torch_rng": torch.get_rng_state(),
        "state": asdict(state),
        "train_seconds": train_seconds,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load(path: Path, cell: Cell, model, optimizer, scheduler, sampler) -> tuple[TrainState, float]:
    """Restore everything saved by ``save``; returns (train state, train seconds so far)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise BenchError(f"checkpoint {path} is unreadable ({error.__class__.__name__}); delete "
                         "it or rerun with --force") from None
    if not isinstance(payload, dict) or payload.get("config") != cell.resolved():
        raise BenchError(f"checkpoint {path} was written for another configuration than "
                         f"{cell.describe()}; delete it or rerun with --force")
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    sampler.set_state(payload["sampler"])
    torch.set_rng_state(payload["torch_rng"])
    return TrainState(**payload["state"]), payload["train_seconds"]
