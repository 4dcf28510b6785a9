"""The cub adapter on CUB_200_2011 fixture trees in the real layout (metadata files + images/)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.datasets import cub
from bench.datasets.cub import CUB
from bench.errors import BenchError
from bench.registry import DATASETS, build_config

EIGHT_CLASSES = [f"{index:03d}.Bird_{index}" for index in range(1, 9)]
WIDTH, HEIGHT = 48, 36
BOX = (8, 6, 20, 16)  # x, y, width, height: the "bird", red on a white photo


def write_cub(folder: Path, classes: list[str], per_class: int = 2) -> Path:
    """A CUB_200_2011 folder: classes listed out of order in the files, ids shuffled per class."""
    images = folder / "images"
    rows = {name: [] for name in ("images", "labels", "boxes")}
    photo = np.full((HEIGHT, WIDTH, 3), 255, dtype=np.uint8)
    x, y, width, height = BOX
    photo[y:y + height, x:x + width] = (200, 0, 0)
    for class_id, name in enumerate(classes, start=1):
        (images / name).mkdir(parents=True)
        for number in range(per_class):
            image_id = len(rows["images"]) + 1
            file = f"{name}/{name.split('.')[1]}_{number:04d}.jpg"
            Image.fromarray(photo).save(images / file, quality=95)
            rows["images"].append(f"{image_id} {file}")
            rows["labels"].append(f"{image_id} {class_id}")
            rows["boxes"].append(f"{image_id} {x}.0 {y}.0 {width}.0 {height}.0")
    (folder / "classes.txt").write_text(
        "".join(f"{class_id} {name}\n" for class_id, name in enumerate(classes, start=1)))
    (folder / "images.txt").write_text("\n".join(rows["images"]) + "\n")
    (folder / "image_class_labels.txt").write_text("\n".join(rows["labels"]) + "\n")
    (folder / "bounding_boxes.txt").write_text("\n".join(rows["boxes"]) + "\n")
    return folder


@pytest.fixture()
def cub_root(tmp_path) -> Path:
    write_cub(tmp_path / "data" / "CUB_200_2011", EIGHT_CLASSES)
    return tmp_path / "data"


def adapter(root, cache_dir, **options) -> CUB:
    config = build_config(CUB.Config, {"size": "16", **options}, "dataset cub")
    return CUB(config, root=root, cache_dir=cache_dir)


def test_registered_with_its_metadata():
    assert DATASETS.get("cub") is CUB
    assert (CUB.channels, CUB.image_size, CUB.Config().split) == (3, 84, "closer-look")


def test_eight_classes_split_four_two_two_by_chens_rule(cub_root, tmp_path):
    dataset = adapter(cub_root, tmp_path)
    splits = {split: dataset.load(split) for split in ("train", "val", "test")}
    assert {split: images.n_classes for split, images in splits.items()} == {
        "train": 4, "val": 2, "test": 2}
    by_index = {split: [EIGHT_CLASSES.index(name) for name in images.class_names]
                for split, images in splits.items()}
    assert by_index == {"train": [0, 2, 4, 6], "val": [1, 5], "test": [3, 7]}
    for split, images in splits.items():
        assert images.images.shape == (images.n_classes * 2, 3, 16, 16)
        assert images.images.dtype == torch.uint8
        assert list(images.labels) == sorted(images.labels)
        assert images.name == f"cub/closer-look/{split}"


def test_order_of_classes_txt_does_not_matter(tmp_path):
    write_cub(tmp_path / "CUB_200_2011", list(reversed(EIGHT_CLASSES)))
    test = adapter(tmp_path, tmp_path / "cache").load("test")
    assert test.class_names == [EIGHT_CLASSES[3], EIGHT_CLASSES[7]]


@pytest.mark.parametrize("layout", ["", "CUB_200_2011", "cubirds200/CUB_200_2011"])
def test_accepted_folder_layouts(tmp_path, layout):
    write_cub(tmp_path / "data" / layout, EIGHT_CLASSES)
    assert adapter(tmp_path / "data", tmp_path / "cache").load("val").n_classes == 2


def red_share(images: torch.Tensor) -> float:
    images = images.float()
    return (images[:, 0] - images[:, 1] > 100).float().mean().item()


def test_bbox_crop_keeps_the_bird(cub_root, tmp_path):
    whole = adapter(cub_root, tmp_path).load("train").images
    cropped = adapter(cub_root, tmp_path, crop="bbox").load("train").images
    assert red_share(cropped) > 0.9
    assert red_share(whole) < 0.2


def test_second_load_reads_the_cache(cub_root, tmp_path, monkeypatch):
    adapter(cub_root, tmp_path).load("test")
    monkeypatch.setattr(cub, "decode_photos", None)
    assert adapter(cub_root, tmp_path).load("test").n_classes == 2


@pytest.mark.parametrize("options", [{"crop": "bbox"}, {"size": "20"}])
def test_changed_option_builds_a_new_cache(cub_root, tmp_path, options):
    adapter(cub_root, tmp_path).load("test")
    adapter(cub_root, tmp_path, **options).load("test")
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_missing_root_names_the_layout(tmp_path):
    with pytest.raises(BenchError, match="--data-root.*CUB_200_2011"):
        adapter(None, tmp_path).load("train")
    with pytest.raises(BenchError, match="cub not found.*--download"):
        adapter(tmp_path, tmp_path / "cache").load("train")


@pytest.mark.parametrize("file", ["images.txt", "image_class_labels.txt", "classes.txt"])
def test_missing_metadata_file_is_named(cub_root, tmp_path, file):
    (cub_root / "CUB_200_2011" / file).unlink()
    with pytest.raises(BenchError, match=f"no {re.escape(file)}.*--download"):
        adapter(cub_root, tmp_path).load("train")


def test_bounding_boxes_needed_only_for_bbox_crop(cub_root, tmp_path):
    (cub_root / "CUB_200_2011" / "bounding_boxes.txt").unlink()
    assert adapter(cub_root, tmp_path).load("val").n_classes == 2
    with pytest.raises(BenchError, match="no bounding_boxes.txt"):
        adapter(cub_root, tmp_path, crop="bbox").load("val")


def test_missing_and_corrupt_images_are_named(cub_root, tmp_path):
    photos = sorted((cub_root / "CUB_200_2011" / "images").rglob("*.jpg"))
    photos[0].unlink()
    with pytest.raises(BenchError, match="1 of 8 listed images missing, e.g. images/001.Bird_1/"):
        adapter(cub_root, tmp_path).load("train")
    photos[3].write_bytes(b"GIF89a broken")
    with pytest.raises(BenchError, match=re.escape(f"cannot read image {photos[3]}")):
        adapter(cub_root, tmp_path).load("val")


@pytest.mark.parametrize("options, message", [({"split": "random"}, "closer-look, meta-dataset"),
                                              ({"crop": "box"}, "valid: none, bbox")])
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(BenchError, match=message):
        build_config(CUB.Config, options, "dataset cub")


@pytest.mark.slow
def test_meta_dataset_split_is_learn2learns(tmp_path):
    """All 200 class names of learn2learn's lists, one photo each: 140/30/30 classes."""
    from bench.l2l import learn2learn

    learn2learn()
    from learn2learn.vision.datasets.cu_birds200 import SPLITS

    classes = sorted(name for members in SPLITS.values() for name in members)
    write_cub(tmp_path / "CUB_200_2011", classes, per_class=1)
    dataset = adapter(tmp_path, tmp_path / "cache", split="meta-dataset")
    sizes = {split: dataset.load(split).n_classes for split in ("train", "val", "test")}
    assert sizes == {"train": 140, "val": 30, "test": 30}
    assert dataset.load("test").class_names == sorted(SPLITS["test"])
    with pytest.raises(BenchError, match="170 classes of the meta-dataset split missing"):
        write_cub(tmp_path / "small" / "CUB_200_2011", classes[:30])
        adapter(tmp_path / "small", tmp_path / "cache", split="meta-dataset").load("train")


REAL_SPLITS = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cub"
               / "splits_closerlook")


@pytest.mark.realdata
def test_closer_look_rule_matches_chens_published_lists():
    """Chen et al.'s own base/val/novel file lists (paths only; no images needed)."""
    if not REAL_SPLITS.is_dir():
        pytest.skip(f"Chen et al.'s CUB lists are not at {REAL_SPLITS} (../shared/data/cub)")
    published = {split: json.loads((REAL_SPLITS / f"{name}.json").read_text())
                 for split, name in (("train", "base"), ("val", "val"), ("test", "novel"))}
    photos = [cub.Photo(path.split("/images/", 1)[1], path.split("/")[-2], None)
              for lists in published.values() for path in lists["image_names"]]
    ours = cub.split_photos(photos, "closer-look", REAL_SPLITS)
    for split, lists in published.items():
        expected = {lists["label_names"][label] for label in lists["image_labels"]}
        assert {photo.class_name for photo in ours[split]} == expected
        assert len(ours[split]) == len(lists["image_names"])
    assert [len(ours[split]) for split in ("train", "val", "test")] == [5885, 2950, 2953]
