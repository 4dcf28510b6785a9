"""Helpers shared by the real-dataset adapters: root checks, decoding, source identity,
augmentation.

Decoding happens once, when a cache is built (see ``bench.data.cached_arrays``); everything here
turns files into uint8 arrays or describes files cheaply enough to key that cache on every start.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from bench.errors import BenchError

RESAMPLE = Image.Resampling.LANCZOS  # PIL's antialiasing filter ("ANTIALIAS"), as Ravi's script
CACHE_FORMAT = 1  # bump when the cached arrays change meaning, so old caches are not reused
ROOT_HINT = "pass --data-root DIR or set FEWSHOT_BENCH_DATA"


def require_root(root: Path | None, dataset: str, layout: str, download: bool = False) -> Path:
    """The data root, or a one-line error naming the expected layout and --download."""
    if root is None:
        raise BenchError(f"dataset {dataset} needs its files: {ROOT_HINT}, where DIR holds "
                         f"{layout} (or add --download)")
    if not Path(root).exists() and not download:  # --download creates it
        raise BenchError(f"the data root {root} of {dataset} does not exist; pass --data-root "
                         f"with the folder that holds {layout} (or add --download)")
    return root


def missing_error(dataset: str, root: Path, layout: str, detail: str = "") -> BenchError:
    detail = f" ({detail})" if detail else ""
    return BenchError(f"{dataset} not found or incomplete under {root}{detail}: expected {layout}; "
                      "fix the folder or add --download")


def decode(source: Path | bytes, label: str | Path, mode: str, size: int,
           box: Sequence[float] | None = None) -> np.ndarray:
    """One image as a uint8 array (size×size, or size×size×3 for RGB), resized with antialiasing.

    ``box`` (left, top, right, bottom) in original pixels crops before resizing. JPEGs are decoded
    at a reduced DCT scale when that still leaves at least ``size`` pixels, which makes full-size
    photos several times faster to read without changing the result visibly.
    """
    try:
        stream = io.BytesIO(source) if isinstance(source, bytes) else source
        with Image.open(stream) as image:
            original = image.size
            width, height = _box_size(box, original)
            image.draft("RGB" if mode == "RGB" else "L", (max(1, original[0] * size // width),
                                                          max(1, original[1] * size // height)))
            scale = (image.size[0] / original[0], image.size[1] / original[1])
            scaled = None if box is None else tuple(
                value * scale[index % 2] for index, value in enumerate(box))
            resized = image.convert(mode).resize((size, size), RESAMPLE, box=scaled)
            return np.asarray(resized, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        raise BenchError(f"cannot read image {label}: {error}; replace it with a good copy of "
                         "the image (the dataset's lists name it: a deleted file fails the next "
                         "run as missing)") from None


def _box_size(box: Sequence[float] | None, original: tuple[int, int]) -> tuple[int, int]:
    if box is None:
        return original
    return max(1, int(box[2] - box[0])), max(1, int(box[3] - box[1]))


def decode_many(paths: Sequence[Path], size: int, boxes: Sequence | None = None) -> np.ndarray:
    """RGB images as uint8 N×3×size×size, decoded on a few threads (PIL releases the GIL)."""
    boxes = boxes if boxes is not None else [None] * len(paths)
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)

    def one(index: int) -> None:
        image = decode(paths[index], paths[index], "RGB", size, boxes[index])
        out[index] = image.transpose(2, 0, 1)

    pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
    try:
        list(pool.map(one, range(len(paths))))
    except BaseException:  # Ctrl-C or a bad image: drop the queued decodes, do not wait for them
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return out


def file_identity(paths: Sequence[Path]) -> list[list]:
    """(path, size, mtime) of each file: changes whenever a file is replaced, cheap to compute."""
    identity = []
    for path in paths:
        stat = Path(path).stat()
        identity.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
    return identity


def listed_identity(folder: Path, names: Sequence[str], dataset: str, layout: str) -> str:
    """A digest of the size and mtime of each listed file (relative to ``folder``).

    Stat-ing every file costs well under a second for tens of thousands of them, and catches a
    partial copy: a missing file is a one-line error naming the first one.
    """
    digest = hashlib.sha256()
    missing = []
    for name in names:
        try:
            stat = (folder / name).stat()
        except FileNotFoundError:
            missing.append(name)
            continue
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    if missing:
        raise missing_error(dataset, folder, layout, f"{len(missing)} of {len(names)} listed "
                            f"images missing, e.g. {missing[0]}")
    return digest.hexdigest()


def read_lines(path: Path, dataset: str, layout: str) -> list[list[str]]:
    """The whitespace-split lines of a metadata file, or a one-line error naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise missing_error(dataset, path.parent, layout, f"no {path.name}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BenchError(f"cannot read {path}: {error}; replace the file") from None
    return [line.split() for line in text.splitlines() if line.strip()]


def rgb_train_augmentation(scale: tuple[float, float] = (0.5, 1.0), jitter: float = 0.4
                           ) -> Callable[[torch.Tensor], torch.Tensor]:
    """Random resized crop, horizontal flip and colour jitter for a float batch [B, 3, H, W].

    The crop keeps 50–100% of the area (torchvision's default 8–100% is meant for long
    supervised training and is too harsh for few-shot episodes), aspect ratio 3/4–4/3, resized
    back to H×W bilinearly. Brightness, contrast and saturation factors are drawn from
    [1 - jitter, 1 + jitter] and applied in that fixed order. All random numbers come from torch's
    CPU generator, so the harness's seed fixes them on any device.
    """

    def augment(batch: torch.Tensor) -> torch.Tensor:
        batch = _random_resized_crop_flip(batch, scale)
        return _colour_jitter(batch, jitter)

    return augment


def _random_resized_crop_flip(batch: torch.Tensor, scale: tuple[float, float]) -> torch.Tensor:
    count = batch.shape[0]
    area = torch.empty(count).uniform_(*scale)
    log_ratio = torch.empty(count).uniform_(np.log(3 / 4), np.log(4 / 3))
    width = (area * log_ratio.exp()).sqrt().clamp(max=1.0)
    height = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
    centre_x = (torch.rand(count) * 2 - 1) * (1 - width)
    centre_y = (torch.rand(count) * 2 - 1) * (1 - height)
    flip = torch.where(torch.rand(count) < 0.5, -1.0, 1.0)
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = width * flip, centre_x
    theta[:, 1, 1], theta[:, 1, 2] = height, centre_y
    theta = theta.to(batch.device, batch.dtype)
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _colour_jitter(batch: torch.Tensor, jitter: float) -> torch.Tensor:
    count = batch.shape[0]
    factors = torch.empty(3, count, 1, 1, 1).uniform_(1 - jitter, 1 + jitter)
    brightness, contrast, saturation = factors.to(batch.device, batch.dtype)
    batch = (batch * brightness).clamp(0, 1)
    mean = _grey(batch).mean(dim=(1, 2, 3), keepdim=True)
    batch = ((batch - mean) * contrast + mean).clamp(0, 1)
    grey = _grey(batch)
    return ((batch - grey) * saturation + grey).clamp(0, 1)


def _grey(batch: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma, [B, 1, H, W], as torchvision's rgb_to_grayscale."""
    weights = torch.tensor([0.299, 0.587, 0.114], device=batch.device, dtype=batch.dtype)
    return (batch * weights.view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
