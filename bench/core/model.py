"""What training and evaluation share: the progress callbacks, building a cell's model, and the
conversion of stored images to the model's input."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from bench.core.config import Cell
from bench.core.episodes import Episode
from bench.errors import BenchError
from bench.registry import METHODS


class Progress:
    """Callbacks the runner reports to; the CLI draws rich progress bars, tests stay silent."""

    def train_step(self, episode: int, total: int, loss: float) -> None: ...

    def validated(self, episode: int, accuracy: float) -> None: ...

    def evaluated(self, done: int, total: int, resumed: int = 0) -> None:
        """``done`` of ``total`` test episodes are evaluated; the first call has ``done`` =
        ``resumed``, the episodes taken over from an interrupted evaluation (usually 0)."""

    def pretrained(self, epoch: float, total: int, loss: float,
                   images_per_second: float | None = None) -> None:
        """Supervised pre-training (bench.train.pretrain) has done ``epoch`` of ``total`` epochs:
        0 when it starts, a fraction during an epoch (loss nan), a whole number with the
        epoch's mean loss when one ends; ``images_per_second`` since this run of it started."""


class NumericalFault(RuntimeError):
    """The training loss became NaN or infinite."""


def build_model(cell: Cell, channels: int, n_base_classes: int | None = None,
                image_size: int | None = None) -> torch.nn.Module:
    """The cell's method on ``channels``-channel images; ``n_base_classes`` (the training split's
    class count) and ``image_size`` go to the methods that ask for them (``build_needs``)."""
    cls = METHODS.get(cell.method.name)
    known = {"n_base_classes": n_base_classes, "image_size": image_size}
    try:
        return cls(cell.method_config(), channels,
                   **{name: known[name] for name in cls.build_needs})
    except (MemoryError, RuntimeError) as error:  # a parameter too large to allocate
        if not isinstance(error, MemoryError) and "alloc" not in str(error).lower():
            raise
        kind, first = type(error).__name__, (str(error).splitlines() or [""])[0][:240]
        raise BenchError(f"{cell.method.label} cannot be built on this machine ({kind}: "
                         f"{first}); choose smaller parameters (`bench list` shows the "
                         "defaults)") from None


def data_shape(images) -> dict:
    """``build_model``'s keyword arguments for an ImageSet of training images."""
    return {"n_base_classes": images.n_classes, "image_size": int(images.images.shape[-1])}


def episode_seed(episode: Episode) -> int:
    """A seed that identifies the episode by its images (same in cached and per-episode
    evaluation, whatever the order): what test-time fitting draws its initialisation from."""
    digest = hashlib.sha256(episode.indices().numpy().astype(np.int64).tobytes()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def to_float(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return images.to(device, non_blocking=True).float().div_(255.0)
