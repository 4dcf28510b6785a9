"""miniImageNet (Vinyals et al. 2016) with Ravi & Larochelle's split: 64/16/20 classes × 600 images.

Two sources, read offline: learn2learn's pickles ``mini-imagenet-cache-{train,validation,test}.pkl``
(``image_data`` uint8 N×84×84×3, ``class_dict`` class name -> indices) or an image folder with the
Ravi & Larochelle CSVs (``images/<file>.jpg``, ``train.csv``/``val.csv``/``test.csv`` with rows
``filename,label``). Images are 84×84 RGB. ``--download`` uses learn2learn's download and checks
for its known failure: an HTML page saved where the pickle should be.
"""

from __future__ import annotations

import csv
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.data import DatasetAdapter, ImageSet, cached_arrays
from bench.errors import BenchError
from bench.registry import DATASETS

from ._images import (
    CACHE_FORMAT,
    RESAMPLE,
    decode_many,
    file_identity,
    listed_identity,
    missing_error,
    require_root,
    rgb_train_augmentation,
)

PICKLES = {"train": "mini-imagenet-cache-train.pkl", "val": "mini-imagenet-cache-validation.pkl",
           "test": "mini-imagenet-cache-test.pkl"}
CSVS = {"train": "train.csv", "val": "val.csv", "test": "test.csv"}
LEARN2LEARN_MODES = {"train": "train", "val": "validation", "test": "test"}
PICKLE_URL = "https://zenodo.org/record/7978538/files/"  # where learn2learn downloads them from
# What reading a truncated, foreign or HTML file as a pickle (or downloading one) raises.
UNPICKLING_ERRORS = (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, KeyError,
                     IndexError, AttributeError, ImportError, RuntimeError, MemoryError)
LAYOUT = ("learn2learn's mini-imagenet-cache-{train,validation,test}.pkl, or images/<file>.jpg "
          "with Ravi & Larochelle's train.csv, val.csv, test.csv, in DIR or DIR/mini-imagenet")


@DATASETS.register("mini-imagenet")
class MiniImageNet(DatasetAdapter):
    """miniImageNet, Ravi & Larochelle split (64 train / 16 val / 20 test classes), 84×84 RGB."""

    channels = 3
    image_size = 84
    needs_root = True
    description = "miniImageNet 84×84 RGB, Ravi & Larochelle 64/16/20 split (pickles or CSVs)"

    @dataclass(frozen=True)
    class Config:
        source: str = field(default="auto", metadata={
            "help": "pickle (learn2learn's), csv (images/ + Ravi's CSVs) or auto (pickle first)"})
        size: int = field(default=84, metadata={"help": "image side in pixels"})
        augment: str = field(default="on", metadata={
            "help": "on: random crop, flip and colour jitter on training episodes "
                    "(docs/datasets.md); off: none (Snell et al.)"})

        def validate(self) -> None:
            if self.source not in ("auto", "pickle", "csv"):
                raise BenchError(f"mini-imagenet source={self.source!r}; valid: auto, pickle, csv")
            if self.augment not in ("on", "off"):
                raise BenchError(f"mini-imagenet augment={self.augment!r}; valid: on, off")
            if not 8 <= self.size <= 512:
                raise BenchError(f"mini-imagenet size={self.size}; use a side between 8 and 512")

    def standard_classes(self) -> dict[str, int]:
        return {"train": 64, "val": 16, "test": 20}

    def load_split(self, split: str) -> ImageSet:
        self.config.validate()  # also when the config was built directly, not by build_config
        folder, source = self._locate(split)
        key = {"dataset": "mini-imagenet", "format": CACHE_FORMAT, "split": split,
               "source": source, "size": self.config.size}
        if source == "pickle":
            path = folder / PICKLES[split]
            key["files"] = file_identity([path])
            arrays = cached_arrays(self.cache_dir, key, lambda: read_pickle(path, self.config.size))
        else:
            rows = read_csv(folder / CSVS[split])
            names = [f"images/{name}" for name, _ in rows]
            key["files"] = file_identity([folder / CSVS[split]]) + [
                listed_identity(folder, names, "mini-imagenet", LAYOUT)]
            arrays = cached_arrays(self.cache_dir, key,
                                   lambda: read_image_folder(folder, rows, self.config.size))
        return ImageSet(images=torch.from_numpy(arrays["images"]), labels=arrays["labels"],
                        class_names=arrays["classes"].tolist(), name=f"mini-imagenet/ravi/{split}")

    def train_augmentation(self):
        return rgb_train_augmentation() if self.config.augment == "on" else None

    def _locate(self, split: str) -> tuple[Path, str]:
        """The folder and source kind that hold ``split``, downloading the pickle if asked."""
        root = require_root(self.root, "mini-imagenet", LAYOUT, self.download)
        found = find_source(root, self.config.source)
        if found is None and self.download and self.config.source != "csv":
            download(root / "mini-imagenet", split)
            found = find_source(root, "pickle")
        if found is None:
            raise missing_error("mini-imagenet", root, LAYOUT)
        folder, source = found
        needed = folder / (PICKLES[split] if source == "pickle" else CSVS[split])
        if not needed.is_file():
            raise missing_error("mini-imagenet", folder, LAYOUT, f"no {needed.name}")
        return folder, source


def find_source(root: Path, source: str) -> tuple[Path, str] | None:
    """The first of ROOT, ROOT/mini-imagenet holding pickles (or the CSVs with images/)."""
    for folder in (root, root / "mini-imagenet"):
        has_pickle = any((folder / name).is_file() for name in PICKLES.values())
        has_csv = (folder / "images").is_dir() and any(
            (folder / name).is_file() for name in CSVS.values())
        if has_pickle and source in ("auto", "pickle"):
            return folder, "pickle"
        if has_csv and source in ("auto", "csv"):
            return folder, "csv"
    return None


def download(folder: Path, split: str) -> None:
    """learn2learn's download of one pickle, then a check of what it saved.

    learn2learn tries several mirrors and, when one saves an HTML page, fails while unpickling it;
    that error is only reported if nothing was saved, since ``check_pickle`` names it better.
    """
    from bench.l2l import learn2learn

    folder.mkdir(parents=True, exist_ok=True)
    failure = ""
    try:
        learn2learn().vision.datasets.MiniImagenet(str(folder), LEARN2LEARN_MODES[split],
                                                   download=True)
    except UNPICKLING_ERRORS as error:
        failure = f": {type(error).__name__}: {error}"
    path = folder / PICKLES[split]
    if not path.is_file():
        raise BenchError(f"downloading {path.name} into {folder} failed{failure}; fetch it by "
                         f"hand from {PICKLE_URL}{path.name}")
    check_pickle(path)


def check_pickle(path: Path) -> None:
    """Recognise learn2learn's known download failure: an HTML page saved as the pickle."""
    with open(path, "rb") as file:
        head = file.read(2048)
    if head.lstrip().startswith(b"<") or b"<html" in head.lower():
        raise BenchError(f"{path} is an HTML page, not a pickle (a known failure of learn2learn's "
                         f"Google Drive download); delete it and fetch {PICKLE_URL}{path.name}")


def read_pickle(path: Path, size: int) -> dict[str, np.ndarray]:
    """A learn2learn pickle as arrays sorted by class name, resized if ``size`` differs."""
    check_pickle(path)
    try:
        with open(path, "rb") as file:
            data = pickle.load(file)
    except UNPICKLING_ERRORS as error:
        raise BenchError(f"cannot read {path}: {type(error).__name__}: {error}; delete it and "
                         f"fetch {PICKLE_URL}{path.name} again") from None
    image_data, class_dict = _pickle_fields(data, path)
    classes = sorted(class_dict)
    indices = [np.asarray(class_dict[name], dtype=np.int64) for name in classes]
    order = np.concatenate(indices)
    if order.size and (order.min() < 0 or order.max() >= len(image_data)):
        raise BenchError(f"{path}: class_dict indexes images outside image_data; fetch it again")
    labels = np.repeat(np.arange(len(classes)), [len(index) for index in indices])
    return {"images": resize_hwc(image_data[order], size), "labels": labels,
            "classes": np.asarray(classes)}


def _pickle_fields(data, path: Path) -> tuple[np.ndarray, dict]:
    image_data = data.get("image_data") if isinstance(data, dict) else None
    class_dict = data.get("class_dict") if isinstance(data, dict) else None
    if not (isinstance(image_data, np.ndarray) and image_data.dtype == np.uint8
            and image_data.ndim == 4 and image_data.shape[-1] == 3
            and isinstance(class_dict, dict)):
        raise BenchError(f"{path} is not a learn2learn mini-imagenet pickle (needs image_data "
                         "uint8 N×H×W×3 and class_dict); fetch it again")
    return image_data, class_dict


def resize_hwc(images: np.ndarray, size: int) -> np.ndarray:
    """N×H×W×3 uint8 -> N×3×size×size, with PIL's antialiasing filter when the size changes."""
    if images.shape[1:3] != (size, size):
        images = np.stack([np.asarray(Image.fromarray(image).resize((size, size), RESAMPLE))
                           for image in images])
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


def read_csv(path: Path) -> list[tuple[str, str]]:
    """(filename, label) rows of a Ravi & Larochelle CSV."""
    try:
        with open(path, newline="", encoding="utf-8") as file:
            rows = list(csv.reader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise BenchError(f"cannot read {path}: {error}; replace the file") from None
    if not rows or [cell.strip() for cell in rows[0]] != ["filename", "label"]:
        raise BenchError(f"{path} does not start with the header filename,label; replace it")
    body = [row for row in rows[1:] if row]
    if any(len(row) != 2 for row in body):
        raise BenchError(f"{path}: every row must be filename,label; replace the file")
    return [(name.strip(), label.strip()) for name, label in body]


def read_image_folder(folder: Path, rows: list[tuple[str, str]], size: int
                      ) -> dict[str, np.ndarray]:
    """Decode the listed images, grouped by class (sorted by name), resized to size×size."""
    classes = sorted({label for _, label in rows})
    class_index = {name: index for index, name in enumerate(classes)}
    ordered = sorted(rows, key=lambda row: class_index[row[1]])  # stable: CSV order within class
    images = decode_many([folder / "images" / name for name, _ in ordered], size)
    labels = np.asarray([class_index[label] for _, label in ordered], dtype=np.int64)
    return {"images": images, "labels": labels, "classes": np.asarray(classes)}
