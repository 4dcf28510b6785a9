"""CUB-200-2011 (Wah et al. 2011): 200 bird species, 11,788 photos, read from the official folder.

Split ``closer-look`` (default) is Chen et al. 2019's rule on the sorted class list, the split of
the published Conv-4 numbers: 0-based index % 2 == 0 train (100 classes), % 4 == 1 val (50),
% 4 == 3 test (50). Split ``frn`` is FRN's (Wertheimer et al. 2021, ``init_CUB_fewshot.py``): the
same arithmetic on the 1-based class ids of ``classes.txt``, so its val and test classes are all
closer-look train classes: the two look alike and are not comparable. Split ``meta-dataset`` is
learn2learn's 140/30/30 class lists (Triantafillou et al. 2020), without the 43 images that also
occur in ImageNet, as learn2learn does by default.
``crop=bbox`` crops each photo to its bounding box before resizing to 84×84.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bench.data import DatasetAdapter, ImageSet, cached_arrays
from bench.errors import BenchError
from bench.registry import DATASETS

from ._images import (
    CACHE_FORMAT,
    decode_many,
    file_identity,
    listed_identity,
    missing_error,
    read_lines,
    require_root,
    rgb_train_augmentation,
)

SPLIT_RULES = ("closer-look", "frn", "meta-dataset")
CROPS = ("none", "bbox")
METADATA = ("images.txt", "image_class_labels.txt", "classes.txt")
LAYOUT = ("CUB_200_2011/ with images/, images.txt, image_class_labels.txt, classes.txt and "
          "bounding_boxes.txt, as DIR, DIR/CUB_200_2011 or DIR/cubirds200/CUB_200_2011")


@dataclass(frozen=True)
class Photo:
    path: str  # relative to images/, e.g. "001.Black_footed_Albatross/xxx.jpg"
    class_name: str
    box: tuple[float, float, float, float] | None  # left, top, right, bottom, for crop=bbox
    class_id: int = 0  # the 1-based id of classes.txt (FRN's split rule reads it)


@DATASETS.register("cub")
class CUB(DatasetAdapter):
    """CUB-200-2011 birds, 84×84 RGB, split closer-look or frn (100/50/50) or meta-dataset."""

    channels = 3
    image_size = 84
    needs_root = True
    description = ("CUB-200-2011 birds 84×84 RGB; splits closer-look (100/50/50), frn (100/50/50, "
                   "other classes) or meta-dataset (140/30/30)")

    @dataclass(frozen=True)
    class Config:
        split: str = field(default="closer-look", metadata={
            "help": "closer-look: Chen et al.'s 100/50/50 rule; frn: FRN's 100/50/50 rule on "
                    "the 1-based class ids; meta-dataset: learn2learn's 140/30/30 lists"})
        crop: str = field(default="none", metadata={
            "help": "none (whole photo) or bbox (crop to the bird's bounding box)"})
        size: int = field(default=84, metadata={"help": "image side in pixels"})
        augment: str = field(default="on", metadata={
            "help": "on: random crop, flip and colour jitter on training images "
                    "(docs/datasets.md; Chen et al. augment); off: none"})

        def validate(self) -> None:
            if self.augment not in ("on", "off"):
                raise BenchError(f"cub augment={self.augment!r}; valid: on, off")
            if self.split not in SPLIT_RULES:
                raise BenchError(f"unknown cub split {self.split!r}; valid: "
                                 f"{', '.join(SPLIT_RULES)}")
            if self.crop not in CROPS:
                raise BenchError(f"cub crop={self.crop!r}; valid: none, bbox")
            if not 8 <= self.size <= 512:
                raise BenchError(f"cub size={self.size}; use a side between 8 and 512")

    def standard_classes(self) -> dict[str, int]:
        if self.config.split == "meta-dataset":
            return {"train": 140, "val": 30, "test": 30}
        return {"train": 100, "val": 50, "test": 50}

    def load_split(self, split: str) -> ImageSet:
        config = self.config
        config.validate()  # also when the config was built directly, not through build_config
        folder = self._folder()
        files = [folder / name for name in METADATA]
        if config.crop == "bbox":
            files.append(folder / "bounding_boxes.txt")
            if not files[-1].is_file():
                raise BenchError(f"crop=bbox needs the boxes of the original photos "
                                 f"(bounding_boxes.txt), which {folder} lacks; point --data-root "
                                 "at the official CUB_200_2011 download or use -D crop=none")
        for file in files:
            if not file.is_file():
                raise missing_error("cub", folder, LAYOUT, f"no {file.name}")
        photos = split_photos(read_photos(folder, config.crop == "bbox"), config.split, folder)
        photos = photos[split]
        key = {"dataset": "cub", "format": CACHE_FORMAT, "split_rule": config.split,
               "split": split, "crop": config.crop, "size": config.size,
               "files": file_identity(files) + [listed_identity(
                   folder, [f"images/{photo.path}" for photo in photos], "cub", LAYOUT)]}
        arrays = cached_arrays(self.cache_dir, key, lambda: decode_photos(folder, photos,
                                                                           config.size))
        return ImageSet(images=torch.from_numpy(arrays["images"]), labels=arrays["labels"],
                        class_names=arrays["classes"].tolist(), name=f"cub/{config.split}/{split}")

    def train_augmentation(self):
        return rgb_train_augmentation() if self.config.augment == "on" else None

    def _folder(self) -> Path:
        root = require_root(self.root, "cub", LAYOUT, self.download)
        folder = find_folder(root)
        if folder is None and self.download:
            download(root)
            folder = find_folder(root)
        if folder is None:
            raise missing_error("cub", root, LAYOUT)
        return folder


def find_folder(root: Path) -> Path | None:
    """The first of ROOT/CUB_200_2011, ROOT/cubirds200/CUB_200_2011, ROOT that looks like CUB.

    ROOT itself needs a metadata file: an images/ folder alone may belong to another dataset.
    """
    for folder in (root / "CUB_200_2011", root / "cubirds200" / "CUB_200_2011"):
        if (folder / "images").is_dir() or any((folder / name).is_file() for name in METADATA):
            return folder
    return root if any((root / name).is_file() for name in METADATA) else None


def download(root: Path) -> None:
    """learn2learn's CUBirds200 download (1.1 GB) into ROOT/cubirds200/; used only to download."""
    from bench.l2l import learn2learn

    try:
        learn2learn().vision.datasets.CUBirds200(str(root), mode="all", download=True)
    except (OSError, RuntimeError, EOFError, tarfile.TarError) as error:  # requests' are OSErrors
        raise BenchError(f"downloading CUB into {root}/cubirds200 failed: {error}; extract "
                         f"CUB_200_2011.tgz there by hand") from None


def read_photos(folder: Path, with_boxes: bool) -> list[Photo]:
    """Every photo of images.txt with its class (and box), in images.txt order."""
    paths = _table(folder / "images.txt", 2)
    labels = _table(folder / "image_class_labels.txt", 2)
    class_names = _table(folder / "classes.txt", 2)
    boxes = _table(folder / "bounding_boxes.txt", 5) if with_boxes else {}
    photos = []
    for image_id, (path,) in paths.items():
        try:
            class_id = labels[image_id][0]
            class_name = class_names[class_id][0]
            box = _box(boxes[image_id]) if with_boxes else None
            photos.append(Photo(path, class_name, box, int(class_id)))
        except (KeyError, ValueError):
            raise BenchError(f"{folder}: image {image_id} ({path}) lacks a valid class or "
                             "bounding box in the metadata files; replace them") from None
    return photos


def _table(path: Path, columns: int) -> dict[str, list[str]]:
    """id -> the other columns of one CUB metadata file."""
    rows = read_lines(path, "cub", LAYOUT)
    if any(len(row) != columns for row in rows):
        raise BenchError(f"{path}: every line needs {columns} fields separated by spaces; "
                         "replace the file")
    return {row[0]: row[1:] for row in rows}


def _box(fields: list[str]) -> tuple[float, float, float, float]:
    left, top, width, height = (float(value) for value in fields)
    if width <= 0 or height <= 0:
        raise ValueError
    return left, top, left + width, top + height


RULE_SPLITS = ("train", "val", "train", "test")  # by number % 4, for closer-look and frn


def split_photos(photos: list[Photo], rule: str, folder: Path) -> dict[str, list[Photo]]:
    """The photos of each split. closer-look numbers the sorted class names from 0, frn takes the
    ids of classes.txt (1-based): the same % 4 rule on two numberings gives two different splits."""
    classes = sorted({photo.class_name for photo in photos})
    if rule == "closer-look":
        split_of = {name: RULE_SPLITS[index % 4] for index, name in enumerate(classes)}
    elif rule == "frn":
        split_of = {photo.class_name: RULE_SPLITS[photo.class_id % 4] for photo in photos}
    else:
        split_of, duplicates = meta_dataset_classes(classes, folder)
        photos = [photo for photo in photos if Path(photo.path).name not in duplicates]
    out = {"train": [], "val": [], "test": []}
    for photo in photos:
        if photo.class_name in split_of:
            out[split_of[photo.class_name]].append(photo)
    return out


def meta_dataset_classes(classes: list[str], folder: Path) -> tuple[dict[str, str], set[str]]:
    """learn2learn's class lists (split name per class) and its ImageNet-duplicate file names."""
    from bench.l2l import learn2learn

    learn2learn()
    from learn2learn.vision.datasets.cu_birds200 import IMAGENET_DUPLICATES, SPLITS

    names = {"train": "train", "validation": "val", "test": "test"}
    split_of = {name: names[split] for split, members in SPLITS.items() for name in members}
    missing = sorted(set(split_of) - set(classes))
    if missing:
        raise missing_error("cub", folder, LAYOUT, f"{len(missing)} classes of the meta-dataset "
                            f"split missing, e.g. {missing[0]}")
    return split_of, set(IMAGENET_DUPLICATES["all"])


def decode_photos(folder: Path, photos: list[Photo], size: int) -> dict[str, np.ndarray]:
    """The split's photos, grouped by class (sorted names), as uint8 N×3×size×size."""
    classes = sorted({photo.class_name for photo in photos})
    class_index = {name: index for index, name in enumerate(classes)}
    ordered = sorted(photos, key=lambda photo: class_index[photo.class_name])
    images = decode_many([folder / "images" / photo.path for photo in ordered], size,
                         [photo.box for photo in ordered])
    labels = np.asarray([class_index[photo.class_name] for photo in ordered], dtype=np.int64)
    return {"images": images, "labels": labels, "classes": np.asarray(classes)}
