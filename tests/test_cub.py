"""The cub adapter on CUB_200_2011 fixture trees in the real layout (metadata files + images/)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from bench.datasets import _images as cub_images
from bench.datasets import cub
from bench.datasets.cub import CUB
from helpers import without_progress
from PIL import Image

from bench.errors import BenchError
from bench.registry import DATASETS, build_config

EIGHT_CLASSES = [f"{index:03d}.Bird_{index}" for index in range(1, 9)]
WIDTH, HEIGHT = 48, 36
BOX = (8, 6, 20, 16)  # x, y, width, height: the "bird", red on a white photo


def write_cub(folder: Path, classes: list[str], per_class: int | list[int] = 2) -> Path:
    """A CUB_200_2011 folder: class k of ``classes`` gets id k (1-based) in classes.txt and
    ``per_class`` photos (or ``per_class[k - 1]``)."""
    images = folder / "images"
    rows = {name: [] for name in ("images", "labels", "boxes")}
    photo = np.full((HEIGHT, WIDTH, 3), 255, dtype=np.uint8)
    x, y, width, height = BOX
    photo[y:y + height, x:x + width] = (200, 0, 0)
    for class_id, name in enumerate(classes, start=1):
        (images / name).mkdir(parents=True)
        count = per_class if isinstance(per_class, int) else per_class[class_id - 1]
        for number in range(count):
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


def split_sizes(root, cache_dir, rule: str) -> dict[str, tuple[list[str], int]]:
    dataset = adapter(root, cache_dir, split=rule)
    return {split: (dataset.load(split).class_names, len(dataset.load(split).labels))
            for split in ("train", "val", "test")}


def test_frn_split_is_the_one_based_rule_on_class_ids(tmp_path):
    """Class id k has k photos, so image counts tell the classes apart: FRN takes id % 2 == 0
    train, % 4 == 1 val, % 4 == 3 test; closer-look the same on 0-based sorted positions."""
    write_cub(tmp_path / "CUB_200_2011", EIGHT_CLASSES, per_class=list(range(1, 9)))
    frn = split_sizes(tmp_path, tmp_path / "cache", "frn")
    names = EIGHT_CLASSES  # id k is EIGHT_CLASSES[k - 1]
    assert frn == {"train": ([names[1], names[3], names[5], names[7]], 2 + 4 + 6 + 8),
                   "val": ([names[0], names[4]], 1 + 5), "test": ([names[2], names[6]], 3 + 7)}
    closer = split_sizes(tmp_path, tmp_path / "cache", "closer-look")
    assert {split: count for split, (_, count) in closer.items()} == {
        "train": 1 + 3 + 5 + 7, "val": 2 + 6, "test": 4 + 8}
    assert set(frn["val"][0]) | set(frn["test"][0]) <= set(closer["train"][0])
    for rule in (frn, closer):
        assert sum(len(classes) for classes, _ in rule.values()) == 8
        assert len({name for classes, _ in rule.values() for name in classes}) == 8


def test_frn_reads_the_ids_of_classes_txt_not_the_names(tmp_path):
    """With classes.txt numbering the names backwards, id 2 is the seventh name."""
    write_cub(tmp_path / "CUB_200_2011", list(reversed(EIGHT_CLASSES)))
    train = adapter(tmp_path, tmp_path / "cache", split="frn").load("train")
    assert train.class_names == [EIGHT_CLASSES[index] for index in (0, 2, 4, 6)]
    assert train.name == "cub/frn/train"


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
    with pytest.raises(BenchError, match=r"crop=bbox needs .*bounding_boxes.txt.*crop=none"):
        adapter(cub_root, tmp_path, crop="bbox").load("val")


def test_missing_and_corrupt_images_are_named(cub_root, tmp_path):
    photos = sorted((cub_root / "CUB_200_2011" / "images").rglob("*.jpg"))
    photos[0].unlink()
    with pytest.raises(BenchError, match="1 of 8 listed images missing, e.g. images/001.Bird_1/"):
        adapter(cub_root, tmp_path).load("train")
    photos[3].write_bytes(b"GIF89a broken")
    with pytest.raises(BenchError, match=re.escape(f"cannot read image {photos[3]}")):
        adapter(cub_root, tmp_path).load("val")


@pytest.mark.parametrize("options, message", [
    ({"split": "random"}, "closer-look, frn, meta-dataset"),
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


SIDE = 64


def coordinate_images(count: int) -> torch.Tensor:
    """Channel 0 is the x coordinate (0 left … 1 right), channel 1 the y coordinate."""
    ramp = torch.linspace(0, 1, SIDE)
    batch = torch.full((count, 3, SIDE, SIDE), 0.5)
    batch[:, 0], batch[:, 1] = ramp.view(1, 1, SIDE), ramp.view(1, SIDE, 1)
    return batch


def test_training_crop_and_flip_are_as_documented(monkeypatch):
    """docs/datasets.md: crop of 50–100% of the area, aspect 3/4–4/3, flip with probability 1/2.
    On coordinate images the first-to-last column difference of channel 0 is the crop's width
    (negative when flipped), of channel 1 its height (half a pixel of border clamping aside)."""
    monkeypatch.setattr(cub_images, "_colour_jitter", lambda batch, jitter: batch)
    torch.manual_seed(0)
    out = CUB(CUB.Config()).train_augmentation()(coordinate_images(2000))
    width = out[:, 0, :, -1].mean(1) - out[:, 0, :, 0].mean(1)
    height = out[:, 1, -1, :].mean(1) - out[:, 1, 0, :].mean(1)
    area, aspect, slack = width.abs() * height, width.abs() / height, 2 / SIDE
    assert 0.5 - slack <= area.min() < 0.55 and 0.95 < area.max() <= 1 + slack
    assert 3 / 4 - slack <= aspect.min() < 0.8 and 1.25 < aspect.max() <= 4 / 3 + slack
    assert 0.45 < (width < 0).float().mean() < 0.55 and (height > 0).all()


def test_training_colour_jitter_is_as_documented(monkeypatch):
    """Brightness, contrast, saturation factors each in [0.6, 1.4], recovered from one two-colour
    image: contrast and saturation keep the mean luma (so it scales by the brightness), saturation
    keeps each pixel's luma (so the luma gap scales by brightness × contrast), and the red-green
    gap of a pixel scales by all three."""
    monkeypatch.setattr(cub_images, "_random_resized_crop_flip", lambda batch, scale: batch)
    left, right = torch.tensor([0.3, 0.2, 0.2]), torch.tensor([0.15, 0.1, 0.1])
    batch = torch.empty(3000, 3, 4, 4)
    batch[..., :2], batch[..., 2:] = left.view(3, 1, 1), right.view(3, 1, 1)
    torch.manual_seed(0)
    out = CUB(CUB.Config()).train_augmentation()(batch)
    luma = torch.tensor([0.299, 0.587, 0.114])
    out_left, out_right = out[:, :, 0, 0], out[:, :, 0, 3]
    brightness = (out_left + out_right) @ luma / ((left + right) @ luma)
    contrast = (out_left - out_right) @ luma / (brightness * ((left - right) @ luma))
    saturation = (out_left[:, 0] - out_left[:, 1]) / (brightness * contrast * (left[0] - left[1]))
    for factor in (brightness, contrast, saturation):
        assert 0.6 - 1e-3 <= factor.min() < 0.62 and 1.38 < factor.max() <= 1.4 + 1e-3


def test_augment_off_gives_no_augmentation_and_keeps_the_cache_key(cub_root, tmp_path):
    from bench.errors import BenchError

    on, off = CUB(CUB.Config(), cub_root, tmp_path), CUB(CUB.Config(augment="off"), cub_root,
                                                           tmp_path)
    assert off.train_augmentation() is None and callable(on.train_augmentation())
    on.load("train")
    off.load("train")
    assert len(list(tmp_path.glob("cub-*.npz"))) == 1  # augmentation is not in the cache key
    with pytest.raises(BenchError, match="cub augment='maybe'; valid: on, off"):
        CUB.Config(augment="maybe").validate()


def test_augmentation_only_on_training_episodes(tmp_path, monkeypatch):
    """A run of 3 training episodes (5-way 1-shot 2-query) with validation and testing calls the
    augmentation 3 times on 15 images; validation and test episodes never go through it."""
    from bench.core.cells import RunOptions
    from bench.core.config import Cell, MethodSpec, TrainConfig
    from bench.execute.driver import run_grid

    write_cub(tmp_path / "CUB_200_2011", [f"{i:03d}.Bird_{i}" for i in range(1, 21)], 4)
    calls = []
    real = CUB.train_augmentation

    def spy(self):
        augment = real(self)
        return lambda batch: calls.append(len(batch)) or augment(batch)

    monkeypatch.setattr(CUB, "train_augmentation", spy)
    train = TrainConfig(episodes=3, query=2, val_every=1, val_episodes=2, checkpoint_every=0)
    cell = Cell(MethodSpec("protonet"), "cub", (("size", "16"),), 5, 1, 2, 4, 0, train)
    outcome = run_grid([cell], RunOptions(out_dir=tmp_path / "out", data_root=tmp_path,
                                          cache_dir=tmp_path / "cache"))
    assert len(outcome.rows) == 1 and outcome.rows[0]["test_episodes"] == 4
    assert calls == [15, 15, 15]


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


REAL_CUB = REAL_SPLITS.parent / "CUB_200_2011"
FRN_IMAGES = {"train": 5903, "val": 2927, "test": 2958}


def real_cub() -> Path:
    if not (REAL_CUB / "images.txt").is_file() or not REAL_SPLITS.is_dir():
        pytest.skip(f"the CUB photos or Chen et al.'s lists are not at {REAL_CUB.parent} "
                    "(../shared/data/cub)")
    return REAL_CUB


@pytest.mark.realdata
def test_real_cub_counts_and_both_100_50_50_rules():
    """Metadata only (no decoding): 11,788 photos of 200 classes; closer-look equal to Chen et
    al.'s lists, frn to FRN's counts; no class in two splits of one rule."""
    photos = cub.read_photos(real_cub(), with_boxes=False)
    assert len(photos) == 11788 and len({photo.class_name for photo in photos}) == 200
    published = {split: json.loads((REAL_SPLITS / f"{name}.json").read_text())
                 for split, name in (("train", "base"), ("val", "val"), ("test", "novel"))}
    rules = {rule: cub.split_photos(photos, rule, REAL_CUB) for rule in ("closer-look", "frn")}
    classes = {rule: {split: {photo.class_name for photo in members}
                      for split, members in splits.items()} for rule, splits in rules.items()}
    for split, lists in published.items():
        assert classes["closer-look"][split] == set(lists["label_names"][label]
                                                    for label in lists["image_labels"])
        assert len(rules["closer-look"][split]) == len(lists["image_names"])
    assert {split: len(members) for split, members in rules["frn"].items()} == FRN_IMAGES
    for by_split in classes.values():
        assert [len(by_split[split]) for split in ("train", "val", "test")] == [100, 50, 50]
        assert not by_split["train"] & by_split["val"] and not by_split["train"] & by_split["test"]
        assert not by_split["val"] & by_split["test"]
    frn_held_out = classes["frn"]["val"] | classes["frn"]["test"]
    assert frn_held_out <= classes["closer-look"]["train"]


@pytest.mark.realdata
@pytest.mark.slow
def test_real_cub_decodes_once_then_loads_from_the_cache(tmp_path, monkeypatch):
    """The first load decodes the 11,788 photos (about 6 s on 2 cores), a second one reads the
    .npz cache (about 0.5 s)."""
    dataset = adapter(real_cub().parent, tmp_path, size="84")
    sizes = {split: dataset.load(split).images.shape for split in ("train", "val", "test")}
    assert sizes == {"train": (5885, 3, 84, 84), "val": (2950, 3, 84, 84),
                     "test": (2953, 3, 84, 84)}
    monkeypatch.setattr(cub, "decode_photos", None)  # a second start must not decode
    again = adapter(REAL_CUB.parent, tmp_path, size="84").load("test")
    assert again.n_classes == 50 and torch.equal(again.images, dataset.load("test").images)


@pytest.mark.realdata
def test_bbox_crop_on_the_shared_folder_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    """The shared photos are 84×84 copies without bounding_boxes.txt (boxes of the originals)."""
    from bench.cli import main

    real_cub()
    monkeypatch.setenv("FEWSHOT_BENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--dataset", "cub", "--data-root", str(REAL_CUB.parent), "-D", "crop=bbox",
              "--methods", "protonet", "--out", str(tmp_path / "out")])
    lines = without_progress(capsys.readouterr().err)
    assert exit_info.value.code == 2 and len(lines) == 1
    assert "crop=bbox needs the boxes of the original photos (bounding_boxes.txt)" in lines[0]
    assert "Traceback" not in lines[0]
