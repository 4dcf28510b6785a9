"""Omniglot (Lake et al. 2015): 1623 handwritten characters from 50 alphabets, 20 drawings each.

Read offline from the extracted folders or straight from the two zips; torchvision's own class is
used only for ``--download``, because it refuses any copy whose zip md5 differs from the official
one, even with ``download=False``. Images are 28×28 grey with bright strokes on black. See
docs/datasets.md for the exact split rules.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bench.data import DatasetAdapter, ImageSet, cached_arrays
from bench.errors import BenchError
from bench.registry import DATASETS

from ._images import CACHE_FORMAT, decode, file_identity, missing_error, require_root

PARTS = {"images_background": 964, "images_evaluation": 659}  # characters in each part
VINYALS_SIZES = {"train": 1028, "val": 172, "test": 423}  # Snell et al.'s split-file counts
LAKE_VAL_ALPHABETS = 5  # the last 5 background alphabets (sorted) validate the lake split
SPLIT_RULES = ("vinyals", "lake")
LAYOUT = ("omniglot-py/images_background/ and omniglot-py/images_evaluation/ "
          "(<Alphabet>/<characterNN>/*.png) or the two .zip files, in DIR or DIR/omniglot-py")


@dataclass(frozen=True)
class Character:
    alphabet: str
    name: str
    files: tuple[str, ...]  # paths (folder source) or member names (zip source), sorted


@DATASETS.register("omniglot")
class Omniglot(DatasetAdapter):
    """Omniglot, split `vinyals` (1200 train+val / 423 test characters ×4 rotations) or `lake`."""

    channels = 1
    image_size = 28
    needs_root = True
    description = "Omniglot handwritten characters, 28×28 grey; splits vinyals (default) or lake"
    _arrays: dict[str, np.ndarray] | None = None  # all three splits, read from the cache at once

    @dataclass(frozen=True)
    class Config:
        split: str = field(default="vinyals", metadata={
            "help": "vinyals: 1028/172/423 characters in a fixed order; lake: background "
                    "alphabets train (last 5 validate), evaluation alphabets test"})
        size: int = field(default=28, metadata={"help": "image side in pixels"})
        rotations: str = field(default="auto", metadata={
            "help": "on: each character ×4 by 0/90/180/270° as separate classes; off; "
                    "auto: on for vinyals, off for lake"})

        def __post_init__(self) -> None:
            if self.rotations == "auto":  # resolved here, so results record what was used
                object.__setattr__(self, "rotations", "on" if self.split == "vinyals" else "off")

        def validate(self) -> None:
            if self.split not in SPLIT_RULES:
                raise BenchError(f"unknown omniglot split {self.split!r}; valid: vinyals, lake")
            if self.rotations not in ("on", "off"):
                raise BenchError(f"omniglot rotations={self.rotations!r}; valid: auto, on, off")
            if not 4 <= self.size <= 512:
                raise BenchError(f"omniglot size={self.size}; use a side between 4 and 512")

    def standard_classes(self) -> dict[str, int] | None:
        """Vinyals et al.'s 1028/172/423 characters, ×4 rotations where they are on."""
        if self.config.split != "vinyals":
            return None
        factor = 4 if self.config.rotations == "on" else 1
        return {"train": 1028 * factor, "val": 172 * factor, "test": 423 * factor}

    def load_split(self, split: str) -> ImageSet:
        if self._arrays is None:
            self._arrays = self._load_arrays()
        rule = self.config.split
        return ImageSet(images=torch.from_numpy(self._arrays[f"{split}_images"]),
                        labels=self._arrays[f"{split}_labels"],
                        class_names=self._arrays[f"{split}_classes"].tolist(),
                        name=f"omniglot/{rule}/{split}")

    def _load_arrays(self) -> dict[str, np.ndarray]:
        config = self.config
        config.validate()  # also when the config was built directly, not through build_config
        sources = self._sources()
        key = {"dataset": "omniglot", "format": CACHE_FORMAT, "split": config.split,
               "size": config.size, "rotations": config.rotations,
               "sources": {part: source_identity(path) for part, path in sources.items()}}
        return cached_arrays(self.cache_dir, key, lambda: build_arrays(sources, config))

    def _sources(self) -> dict[str, Path]:
        root = require_root(self.root, "omniglot", LAYOUT, self.download)
        sources = {part: find_part(root, part) for part in PARTS}
        missing = [part for part, path in sources.items() if path is None]
        if missing and self.download:
            download(root, missing)
            sources = {part: find_part(root, part) for part in PARTS}
            missing = [part for part, path in sources.items() if path is None]
        if missing:
            raise missing_error("omniglot", root, LAYOUT, f"no {' or '.join(missing)}")
        return sources


def find_part(root: Path, part: str) -> Path | None:
    """The folder or zip holding one part, in the order torchvision's layout comes first."""
    for base in (root / "omniglot-py", root):
        if (base / part).is_dir():
            return base / part
        if (base / f"{part}.zip").is_file():
            return base / f"{part}.zip"
    return None


def download(root: Path, parts: list[str]) -> None:
    """Fetch the official zips with torchvision (needs the network) into ROOT/omniglot-py."""
    from torchvision.datasets import Omniglot as TorchvisionOmniglot

    for part in parts:
        try:
            TorchvisionOmniglot(str(root), background=part == "images_background", download=True)
        except (OSError, RuntimeError) as error:  # URLError is an OSError; a bad md5 a RuntimeError
            raise BenchError(f"downloading omniglot {part} into {root}/omniglot-py failed: "
                             f"{error}; download {part}.zip by hand into that folder") from None


def source_identity(path: Path) -> list:
    """A zip by (path, size, mtime); a folder by a digest of every PNG's path, size and mtime."""
    if path.suffix == ".zip":
        return file_identity([path])
    digest = hashlib.sha256()
    for file in _folder_pngs(path):
        stat = file.stat()
        digest.update(f"{file.relative_to(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return [str(path.resolve()), digest.hexdigest()]


def _folder_pngs(part_dir: Path) -> list[Path]:
    files = []
    for folder, _, names in os.walk(part_dir):
        files.extend(Path(folder) / name for name in names if name.endswith(".png"))
    return sorted(files)


def list_characters(path: Path, part: str) -> list[Character]:
    """The characters of one part, sorted by (alphabet, character); a wrong count is an error."""
    if path.suffix == ".zip":
        members = [name.split("/") for name in _zip_names(path) if name.endswith(".png")]
        entries = [(parts[1], parts[2], "/".join(parts)) for parts in members
                   if len(parts) == 4 and parts[0] == part]
    else:
        entries = [(file.parts[-3], file.parts[-2], str(file)) for file in _folder_pngs(path)
                   if len(file.relative_to(path).parts) == 3]
    grouped: dict[tuple[str, str], list[str]] = {}
    for alphabet, character, file in entries:
        grouped.setdefault((alphabet, character), []).append(file)
    if len(grouped) != PARTS[part]:
        raise missing_error("omniglot", path, LAYOUT,
                            f"{len(grouped)} characters in {path.name}, expected {PARTS[part]}")
    return [Character(alphabet, name, tuple(sorted(files)))
            for (alphabet, name), files in sorted(grouped.items())]


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (OSError, zipfile.BadZipFile) as error:
        raise BenchError(f"cannot read {path}: {error}; replace the zip or extract it") from None


def split_characters(by_part: dict[str, list[Character]], rule: str) -> dict[str, list[Character]]:
    """Characters per split. vinyals: background then evaluation alphabets, each sorted, cut
    1028/172/423 in that order; lake: background minus its last alphabets / those / evaluation."""
    background, evaluation = by_part["images_background"], by_part["images_evaluation"]
    if rule == "vinyals":
        ordered = background + evaluation
        train_end = VINYALS_SIZES["train"]
        val_end = train_end + VINYALS_SIZES["val"]
        return {"train": ordered[:train_end], "val": ordered[train_end:val_end],
                "test": ordered[val_end:]}
    val_alphabets = sorted({c.alphabet for c in background})[-LAKE_VAL_ALPHABETS:]
    return {"train": [c for c in background if c.alphabet not in val_alphabets],
            "val": [c for c in background if c.alphabet in val_alphabets],
            "test": evaluation}


def build_arrays(sources: dict[str, Path], config) -> dict[str, np.ndarray]:
    """Decode every drawing once and lay out all three splits (rotations included) for the cache."""
    by_part = {part: list_characters(path, part) for part, path in sources.items()}
    drawings = {}
    for part, characters in by_part.items():
        drawings.update(read_drawings(sources[part], characters, config.size))
    turns = range(4) if config.rotations == "on" else range(1)
    arrays = {}
    for split, characters in split_characters(by_part, config.split).items():
        images, labels, names = [], [], []
        for character in characters:
            for turn in turns:
                images.append(np.rot90(drawings[character], k=turn, axes=(1, 2)))
                labels.extend([len(names)] * len(drawings[character]))
                suffix = f"/rot{90 * turn:03d}" if config.rotations == "on" else ""
                names.append(f"{character.alphabet}/{character.name}{suffix}")
        arrays[f"{split}_images"] = np.concatenate(images)[:, None]
        arrays[f"{split}_labels"] = np.asarray(labels, dtype=np.int64)
        arrays[f"{split}_classes"] = np.asarray(names)
    return arrays


def read_drawings(path: Path, characters: list[Character], size: int
                  ) -> dict[Character, np.ndarray]:
    """Each character's drawings as uint8 [n, size, size], strokes 255 on a 0 background."""
    archive = zipfile.ZipFile(path) if path.suffix == ".zip" else None
    try:
        out = {}
        for character in characters:
            out[character] = np.stack([
                255 - decode(_read(archive, file), f"{path}:{file}" if archive else file,
                             "L", size)
                for file in character.files])
        return out
    finally:
        if archive is not None:
            archive.close()


def _read(archive: zipfile.ZipFile | None, file: str) -> bytes | Path:
    if archive is None:
        return Path(file)
    try:
        return archive.read(file)
    except (OSError, zipfile.BadZipFile) as error:
        raise BenchError(f"cannot read {file} in {archive.filename}: {error}; "
                         "replace the zip") from None
