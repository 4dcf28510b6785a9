"""In-memory image sets and the base class of dataset adapters.

Every adapter turns its source (files, pickles, rendered fonts) into an ``ImageSet`` per split: a
uint8 tensor N×C×H×W and contiguous integer labels. Episodes are index arrays into it, so the
training loop never touches PIL or the filesystem.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import torch

from bench.errors import BenchError
from bench.interrupt import STOP
from bench.results import digest

SPLITS = ("train", "val", "test")


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: np.ndarray  # int64 [N], classes 0..n_classes-1
    class_names: list[str]
    name: str  # "dataset/split-option/split", for messages and episode hashes

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"{self.name}: images must be uint8 N×C×H×W")
        if len(self.labels) != len(self.images):
            raise ValueError(f"{self.name}: {len(self.images)} images but {len(self.labels)} "
                             "labels")

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def images_per_class(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.n_classes)

    def fingerprint(self) -> str:
        """Identity of the content, cheap: shape, labels and a strided sample of the pixels."""
        hasher = hashlib.sha256()
        hasher.update(self.name.encode())
        hasher.update(str(tuple(self.images.shape)).encode())
        hasher.update(self.labels.tobytes())
        flat = self.images.reshape(-1)
        hasher.update(flat[:: max(1, flat.numel() // 100_000)].numpy().tobytes())
        return hasher.hexdigest()[:16]


class DatasetAdapter:
    """Base of dataset plugins. Subclasses set ``Config`` (a frozen dataclass) and
    ``load_split``."""

    Config: ClassVar[type]
    channels: ClassVar[int] = 1
    image_size: ClassVar[int] = 28
    needs_root: ClassVar[bool] = False
    description: ClassVar[str] = ""
    registry_name: ClassVar[str]

    def __init__(self, config, root: Path | None = None, cache_dir: Path | None = None,
                 download: bool = False):
        self.config = config
        self.root = Path(root).expanduser() if root else None
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.download = download
        self._splits: dict[str, ImageSet] = {}

    def load(self, split: str) -> ImageSet:
        if split not in SPLITS:
            raise BenchError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        if split not in self._splits:
            self._splits[split] = self.load_split(split)
        return self._splits[split]

    def load_split(self, split: str) -> ImageSet:
        raise NotImplementedError

    def train_augmentation(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """A function on a float batch [B, C, H, W] in [0, 1] applied to training episodes, or
        None."""
        return None

    def standard_classes(self) -> dict[str, int] | None:
        """Classes per split of the published split this config names ({"train": 64, ...}), or
        None where there is none to hold the data to (a synthetic or custom dataset)."""
        return None

    def split_deviation(self) -> str:
        """"" when the loaded splits have the standard class counts, else what differs, e.g.
        "nonstandard: 6/6/6 classes, standard 64/16/20" (rows say it in their split label, so
        the report never pools them with the standard split's)."""
        standard = self.standard_classes()
        if not standard:
            return ""
        found = {split: self.load(split).n_classes for split in standard}
        if found == standard:
            return ""
        return (f"nonstandard: {'/'.join(str(found[s]) for s in standard)} classes, standard "
                f"{'/'.join(str(standard[s]) for s in standard)}")


def default_cache_dir() -> Path:
    env = os.environ.get("FEWSHOT_BENCH_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fewshot-bench"


def data_root(root: str | Path | None) -> Path | None:
    """The data root from --data-root, else $FEWSHOT_BENCH_DATA, else None."""
    value = root or os.environ.get("FEWSHOT_BENCH_DATA")
    return Path(value).expanduser() if value else None


def cached_arrays(cache_dir: Path, key: dict, build: Callable[[], dict[str, np.ndarray]]
                  ) -> dict[str, np.ndarray]:
    """Arrays built once and stored as an .npz named by a hash of ``key`` (written atomically).

    ``key`` must hold everything the arrays depend on (dataset, split, size, options, and the
    identity of the source files, e.g. their sizes and mtimes), so a changed option never reuses a
    stale cache.
    """
    path = Path(cache_dir) / f"{key.get('dataset', 'data')}-{digest(key)}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return {k: stored[k] for k in stored.files}
        except (OSError, ValueError, EOFError):
            path.unlink(missing_ok=True)  # a torn or corrupt cache file is rebuilt, not trusted
    what = " ".join(str(key[name]) for name in ("dataset", "split") if name in key)
    log = logging.getLogger("bench.data")
    log.info(f"preparing {what} (first use): building its cache {path}",
             extra={"cache_build": "start", "what": what})
    start = time.perf_counter()
    with STOP.phase(f"building the {what} cache", "nothing is lost: the next run builds it"):
        arrays = build()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
            with STOP.removing_on_abort(tmp):
                np.savez(tmp, **arrays)
                os.replace(tmp, path)
            text = json.dumps(key, sort_keys=True, default=str)
            path.with_suffix(".json").write_text(text + "\n")
        except OSError as error:
            raise BenchError(f"cannot write the dataset cache {path}: {error.strerror}; "
                             "pass --cache-dir DIR with a writable folder") from None
    log.info(f"cache of {what} built in {time.perf_counter() - start:.0f} s",
             extra={"cache_build": "done", "what": what})
    return arrays
