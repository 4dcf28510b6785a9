"""Stored trained models (DIR/models/<training id>.pt) and the payload format shared with
training checkpoints: torch.save of a dict whose "config" names what it was trained for."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch

from bench.core.config import Cell
from bench.errors import BenchError
from bench.results import atomic_write_bytes


def model_path(out_dir: Path, cell: Cell) -> Path:
    return Path(out_dir) / "models" / f"{cell.training_id}.pt"


def read_cell_payload(path: Path, cell: Cell, what: str) -> dict:
    """The payload stored for ``cell``'s training at ``path``."""
    return read_payload(path, cell.training(), what, f" than {cell.describe()}")


def write_payload(path: Path, payload: dict) -> None:
    """``payload`` (with its identifying "config") written atomically with torch.save."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


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
    write_payload(path, {"config": cell.training(), "model": model.state_dict(), **trained})


def load_model(path: Path, cell: Cell, model, train_data: str | None = None) -> dict:
    """The stored model's record; refused if it was trained on other files than ``train_data``
    (the training split's fingerprint; models saved before it was recorded are trusted)."""
    payload = read_cell_payload(path, cell, "trained model")
    stored = payload.get("train_data")
    if train_data and stored and stored != train_data:
        raise BenchError(f"trained model {path} was trained on other files of {cell.dataset} "
                         "than these; pass another --out, or --force to retrain")
    model.load_state_dict(payload["model"])
    return {**{key: payload[key] for key in ("best_episode", "log", "train_seconds")},
            "train_data": stored or ""}


def stored_data_shape(path: Path, cell: Cell) -> dict:
    """The training data's shape a stored model was built for (``bench.core.model.data_shape``;
    empty for models stored before it was recorded)."""
    return read_cell_payload(path, cell, "trained model").get("data_shape", {})


def checkpoint_path(out_dir: Path, cell: Cell) -> Path:
    return Path(out_dir) / "checkpoints" / f"{cell.training_id}.pt"


def saved_test_path(out_dir: Path, cell: Cell) -> Path:
    """Where an unfinished test evaluation of ``cell`` keeps the episodes it has done."""
    return Path(out_dir) / "checkpoints" / f"test-{cell.cell_id}.npz"
