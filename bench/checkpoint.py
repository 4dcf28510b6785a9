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
    return Path(out_dir) / "checkpoints" / f"{cell.training_id}.pt"


def model_path(out_dir: Path, cell: Cell) -> Path:
    return Path(out_dir) / "models" / f"{cell.training_id}.pt"


def _write(path: Path, payload: dict) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _read(path: Path, cell: Cell, what: str) -> dict:
    return read_payload(path, cell.training(), what, f" than {cell.describe()}")


def write_payload(path: Path, payload: dict) -> None:
    """``payload`` (with its identifying "config") written atomically with torch.save."""
    _write(path, payload)


def read_payload(path: Path, config: dict, what: str, than: str = "") -> dict:
    """The payload stored at ``path``; a one-line error if it is unreadable or its "config" is
    not ``config``."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise BenchError(f"{what} {path} is unreadable ({error.__class__.__name__}); delete "
                         "it or rerun with --force") from None
    if not isinstance(payload, dict) or payload.get("config") != config:
        raise BenchError(f"{what} {path} was written for another configuration{than}; delete "
                         "it or rerun with --force")
    return payload


def save_model(path: Path, cell: Cell, model, trained: dict) -> None:
    """The trained (best-validated) weights and their training record."""
    _write(path, {"config": cell.training(), "model": model.state_dict(), **trained})


def load_model(path: Path, cell: Cell, model, train_data: str | None = None) -> dict:
    """The stored model's record; refused if it was trained on other files than ``train_data``
    (the training split's fingerprint; models saved before it was recorded are trusted)."""
    payload = _read(path, cell, "trained model")
    stored = payload.get("train_data")
    if train_data and stored and stored != train_data:
        raise BenchError(f"trained model {path} was trained on other files of {cell.dataset} "
                         "than these; pass another --out, or --force to retrain")
    model.load_state_dict(payload["model"])
    return {**{key: payload[key] for key in ("best_episode", "log", "train_seconds")},
            "train_data": stored or ""}


def stored_data_shape(path: Path, cell: Cell) -> dict:
    """The training data's shape a stored model was built for (``bench.runner.data_shape``;
    empty for models stored before it was recorded)."""
    return _read(path, cell, "trained model").get("data_shape", {})


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
    _write(path, payload)


def load(path: Path, cell: Cell, model, optimizer, scheduler, sampler) -> tuple[TrainState, float]:
    """Restore everything saved by ``save``; returns (train state, train seconds so far)."""
    payload = _read(path, cell, "checkpoint")
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    sampler.set_state(payload["sampler"])
    torch.set_rng_state(payload["torch_rng"])
    return TrainState(**payload["state"]), payload["train_seconds"]
