"""The mini-imagenet adapter on fixtures in both real formats: learn2learn's pickles and the
Ravi & Larochelle image folder with CSVs. Every image is filled with a value that identifies it,
so the tests can check which image landed where."""

import csv
import pickle
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from bench.datasets import mini_imagenet
from bench.datasets.mini_imagenet import MiniImageNet
from PIL import Image

import bench.l2l
from bench.errors import BenchError
from bench.registry import DATASETS, build_config

SIDE = 12
CLASSES = {"train": ["n03", "n01", "n02"], "val": ["n05", "n04"], "test": ["n07", "n06"]}
PER_CLASS = 3


def write_pickles(folder: Path) -> None:
    """learn2learn's format: image_data uint8 N×H×W×3, class_dict name -> indices (interleaved)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, classes in CLASSES.items():
        count = len(classes) * PER_CLASS
        image_data = np.empty((count, SIDE, SIDE, 3), dtype=np.uint8)
        image_data[:] = (np.arange(count, dtype=np.uint8) * 10)[:, None, None, None]
        class_dict = {name: list(range(index, count, len(classes)))
                      for index, name in enumerate(classes)}
        with open(folder / mini_imagenet.PICKLES[split], "wb") as file:
            pickle.dump({"image_data": image_data, "class_dict": class_dict}, file, protocol=4)


def write_image_folder(folder: Path) -> None:
    """images/<file>.jpg and Ravi & Larochelle's CSVs, file names as in the real ones."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for split, classes in CLASSES.items():
        rows = [(f"{name}{number:08d}.jpg", name) for name in classes
                for number in range(1, PER_CLASS + 1)]
        for index, (file, _) in enumerate(rows):
            grey = np.full((2 * SIDE, 3 * SIDE, 3), 20 * index, dtype=np.uint8)
            Image.fromarray(grey).save(folder / "images" / file, quality=95)
        with open(folder / mini_imagenet.CSVS[split], "w", newline="") as file:
            csv.writer(file).writerows([("filename", "label"), *rows])


def adapter(root, cache_dir, **options) -> MiniImageNet:
    config = build_config(MiniImageNet.Config, {"size": str(SIDE), **options},
                          "dataset mini-imagenet")
    return MiniImageNet(config, root=root, cache_dir=cache_dir)


def test_registered_with_its_metadata():
    assert DATASETS.get("mini-imagenet") is MiniImageNet
    assert (MiniImageNet.channels, MiniImageNet.image_size) == (3, 84)
    assert MiniImageNet.Config().size == 84


def test_pickles_give_sorted_classes_and_contiguous_labels(tmp_path):
    write_pickles(tmp_path / "data")
    dataset = adapter(tmp_path / "data", tmp_path / "cache")
    for split, classes in CLASSES.items():
        images = dataset.load(split)
        assert images.class_names == sorted(classes)
        assert images.images.shape == (len(classes) * PER_CLASS, 3, SIDE, SIDE)
        assert images.images.dtype == torch.uint8
        assert list(images.images_per_class()) == [PER_CLASS] * len(classes)
        assert images.name == f"mini-imagenet/ravi/{split}"
    train = dataset.load("train")
    first_of_n01 = train.images[train.labels == 0][:, 0, 0, 0].tolist()
    assert first_of_n01 == [10, 40, 70]  # n01 is listed second: indices 1, 4, 7 of image_data


def test_pickle_resized_when_size_differs(tmp_path):
    write_pickles(tmp_path / "data")
    images = adapter(tmp_path / "data", tmp_path / "cache", size="9").load("val")
    assert images.images.shape == (2 * PER_CLASS, 3, 9, 9)


def test_csv_folder_in_mini_imagenet_subfolder(tmp_path):
    write_image_folder(tmp_path / "mini-imagenet")
    dataset = adapter(tmp_path, tmp_path / "cache")
    test = dataset.load("test")
    assert test.class_names == ["n06", "n07"]
    assert test.images.shape == (2 * PER_CLASS, 3, SIDE, SIDE)
    means = test.images.float().mean(dim=(1, 2, 3))
    expected = torch.tensor([60, 80, 100, 0, 20, 40], dtype=torch.float)  # n06 rows come second
    assert torch.allclose(means, expected, atol=3)


def test_auto_prefers_pickles_and_source_selects(tmp_path):
    write_pickles(tmp_path)
    write_image_folder(tmp_path)
    assert adapter(tmp_path, tmp_path / "a").load("val").images[0, 0, 0, 0] == 10  # pickle, not CSV
    from_csv = adapter(tmp_path, tmp_path / "b", source="csv").load("val")
    assert from_csv.images.shape == (2 * PER_CLASS, 3, SIDE, SIDE)
    assert len(list((tmp_path / "b").glob("*.npz"))) == 1


def test_second_load_reads_the_cache_and_options_key_it(tmp_path, monkeypatch):
    write_pickles(tmp_path)
    adapter(tmp_path, tmp_path / "cache").load("train")
    monkeypatch.setattr(mini_imagenet, "read_pickle", None)
    assert adapter(tmp_path, tmp_path / "cache").load("train").n_classes == 3
    monkeypatch.undo()
    adapter(tmp_path, tmp_path / "cache", size="8").load("train")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


def test_replaced_pickle_builds_a_new_cache(tmp_path):
    write_pickles(tmp_path)
    adapter(tmp_path, tmp_path / "cache").load("test")
    CLASSES["test"].append("n08")
    try:
        write_pickles(tmp_path)
        assert adapter(tmp_path, tmp_path / "cache").load("test").n_classes == 3
    finally:
        CLASSES["test"].pop()


def test_missing_root_and_empty_root(tmp_path):
    with pytest.raises(BenchError, match="--data-root.*mini-imagenet-cache"):
        adapter(None, tmp_path).load("train")
    with pytest.raises(BenchError, match="expected learn2learn's.*train.csv.*--download"):
        adapter(tmp_path, tmp_path / "cache").load("train")


def test_partial_pickles_name_the_missing_file(tmp_path):
    write_pickles(tmp_path)
    (tmp_path / mini_imagenet.PICKLES["test"]).unlink()
    assert adapter(tmp_path, tmp_path / "cache").load("train").n_classes == 3
    with pytest.raises(BenchError, match="no mini-imagenet-cache-test.pkl.*--download"):
        adapter(tmp_path, tmp_path / "cache").load("test")


def test_html_instead_of_pickle_is_named(tmp_path):
    write_pickles(tmp_path)
    page = tmp_path / mini_imagenet.PICKLES["val"]
    page.write_bytes(b"<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning")
    with pytest.raises(BenchError, match=re.escape(f"{page} is an HTML page")):
        adapter(tmp_path, tmp_path / "cache").load("val")


@pytest.mark.parametrize("content", [b"\x80\x04truncated", pickle.dumps({"images": [1, 2]})])
def test_unreadable_pickle_names_the_file(tmp_path, content):
    write_pickles(tmp_path)
    (tmp_path / mini_imagenet.PICKLES["train"]).write_bytes(content)
    with pytest.raises(BenchError, match=re.escape(str(tmp_path / "mini-imagenet-cache-train"))):
        adapter(tmp_path, tmp_path / "cache").load("train")


def test_missing_and_corrupt_images_are_named(tmp_path):
    write_image_folder(tmp_path)
    (tmp_path / "images" / "n0600000002.jpg").unlink()
    with pytest.raises(BenchError, match="1 of 6 listed images missing, e.g. images/n0600000002"):
        adapter(tmp_path, tmp_path / "cache").load("test")
    (tmp_path / "images" / "n0400000001.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(BenchError, match=r"cannot read image .*n0400000001\.jpg"):
        adapter(tmp_path, tmp_path / "cache").load("val")


def test_download_detects_an_html_page(tmp_path, monkeypatch):
    """learn2learn's download is replaced by one that saves a web page, as Google Drive does."""

    def fake_download(root, mode, download):
        name = f"mini-imagenet-cache-{mode}.pkl"
        Path(root, name).write_text("<html><body>Too many users have viewed this file</body>")
        raise pickle.UnpicklingError("invalid load key, '<'.")

    datasets = SimpleNamespace(MiniImagenet=fake_download)
    monkeypatch.setattr(bench.l2l, "learn2learn",
                        lambda: SimpleNamespace(vision=SimpleNamespace(datasets=datasets)))
    dataset = MiniImageNet(MiniImageNet.Config(), root=tmp_path, cache_dir=tmp_path / "cache",
                           download=True)
    with pytest.raises(BenchError, match="mini-imagenet-cache-validation.pkl is an HTML page"):
        dataset.load("val")


def test_bad_source_is_a_one_line_error():
    with pytest.raises(BenchError, match="valid: auto, pickle, csv"):
        build_config(MiniImageNet.Config, {"source": "folder"}, "dataset mini-imagenet")


def test_train_augmentation_is_seeded_by_torch_and_keeps_shape():
    augment = MiniImageNet(MiniImageNet.Config()).train_augmentation()
    batch = torch.rand(6, 3, 84, 84)
    torch.manual_seed(0)
    first = augment(batch)
    torch.manual_seed(0)
    second = augment(batch)
    assert torch.equal(first, second)
    assert first.shape == batch.shape and 0 <= first.min() and first.max() <= 1
    assert not torch.allclose(first, batch)


REAL_CSVS = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "miniimagenet"
             / "splits_ravi")


@pytest.mark.realdata
def test_ravi_csvs_read_as_64_16_20_classes_of_600():
    if not REAL_CSVS.is_dir():
        pytest.skip(f"Ravi & Larochelle's CSVs are not at {REAL_CSVS} (../shared/data)")
    classes = {}
    for split, expected in (("train", 64), ("val", 16), ("test", 20)):
        rows = mini_imagenet.read_csv(REAL_CSVS / mini_imagenet.CSVS[split])
        labels = [label for _, label in rows]
        classes[split] = set(labels)
        assert len(classes[split]) == expected and len(rows) == 600 * expected
        assert all(name.startswith(label) for name, label in rows)
    assert not classes["train"] & classes["test"] and not classes["val"] & classes["test"]


def test_augment_off_gives_no_augmentation_and_bad_value_is_named():
    off = build_config(MiniImageNet.Config, {"augment": "off"}, "dataset mini-imagenet")
    assert MiniImageNet(off).train_augmentation() is None
    with pytest.raises(BenchError, match="augment='maybe'; valid: on, off"):
        build_config(MiniImageNet.Config, {"augment": "maybe"}, "dataset mini-imagenet")


def test_train_augmentation_is_the_documented_one():
    """docs/datasets.md: crop of 50–100% of the area at aspect 3/4–4/3, flip with probability
    1/2, brightness/contrast/saturation factors in [0.6, 1.4]. Read off ramp and grey images."""
    augment = MiniImageNet(MiniImageNet.Config()).train_augmentation()
    side, count = 84, 400
    ramp = torch.linspace(0, 1, side)
    batch = torch.stack([ramp.expand(side, side), ramp[:, None].expand(side, side),
                         torch.full((side, side), 0.5)])[None].repeat(count, 1, 1, 1)
    torch.manual_seed(0)
    crops = augment_geometry(batch)
    width = (crops[:, 0, :, -1] - crops[:, 0, :, 0]).abs().mean(1)  # x span kept, flips too
    height = (crops[:, 1, -1, :] - crops[:, 1, 0, :]).mean(1)
    assert (width * height).min() >= 0.5 * 0.97 and (width * height).max() <= 1.01
    assert (width / height).min() >= 0.75 * 0.97 and (width / height).max() <= 4 / 3 * 1.03
    flipped = (crops[:, 0, :, -1] < crops[:, 0, :, 0]).float().mean()
    assert 0.4 < flipped < 0.6
    grey = torch.full((count, 3, 8, 8), 0.5)
    torch.manual_seed(0)
    brightness = augment(grey)[:, 0, 0, 0] / 0.5  # contrast, saturation leave grey alone
    assert brightness.min() >= 0.6 - 1e-6 and brightness.max() <= 1.4 + 1e-6
    assert brightness.min() < 0.65 and brightness.max() > 1.35


def augment_geometry(batch):
    from bench.datasets import _images

    return _images._random_resized_crop_flip(batch, (0.5, 1.0))


def test_augmentation_reaches_training_only(tmp_path, monkeypatch):
    """The grid hands the adapter's augmentation to training; validation and test episodes go
    through ``evaluate``, which has no augmentation argument at all."""
    import inspect

    from bench.core import cells
    from bench.core import model as core_model
    from bench.evaluate import episodic
    from bench.train import cell as train_cell

    assert "augment" not in inspect.signature(episodic.evaluate).parameters
    calls = []
    monkeypatch.setattr(train_cell, "train",
                        lambda *args, **kwargs: calls.append(kwargs["augment"]))
    write_image_folder(tmp_path / "data")
    from bench.core.config import Cell, MethodSpec, TrainConfig

    cell = Cell(MethodSpec("protonet"), "mini-imagenet", (("size", str(SIDE * 2)),), 2, 1, 1, 2,
                0, TrainConfig(episodes=1, query=1, val_every=0, checkpoint_every=0))
    options = cells.RunOptions(out_dir=tmp_path / "out", data_root=tmp_path / "data",
                              cache_dir=tmp_path / "cache")
    adapter = cells.load_adapter(cell, options)
    model = core_model.build_model(cell, 3)
    with pytest.raises(cells.Interrupted):  # the stub trains nothing, so the cell is unfinished
        train_cell.train_cell(cell, model, adapter, options, core_model.Progress(),
                              lambda: False, False)
    assert len(calls) == 1 and callable(calls[0])


REAL_ROOT = REAL_CSVS.parent
REAL_COUNTS = {"train": (38_400, 64), "val": (3_200, 16), "test": (12_000, 20)}


@pytest.mark.realdata
@pytest.mark.slow
def test_real_images_load_with_the_ravi_split_and_cache(monkeypatch):
    """The real image folder: counts, disjoint classes, and a second start from the cache.

    Uses the user's cache ($FEWSHOT_BENCH_CACHE or ~/.cache/fewshot-bench), so only the very first
    run decodes the 53,600 JPEGs (about 25 s on 2 cores; later runs load the 1.1 GB in ~2 s)."""
    if not (REAL_ROOT / "images").is_dir():
        pytest.skip(f"the miniImageNet images are not at {REAL_ROOT}/images (../shared/data)")
    config = build_config(MiniImageNet.Config, {"source": "csv"}, "dataset mini-imagenet")
    dataset = MiniImageNet(config, root=REAL_ROOT)
    classes = {}
    for split, (images, n_classes) in REAL_COUNTS.items():
        loaded = dataset.load(split)
        assert tuple(loaded.images.shape) == (images, 3, 84, 84)
        assert loaded.n_classes == n_classes
        assert set(loaded.images_per_class()) == {images // n_classes}
        classes[split] = set(loaded.class_names)
    assert not (classes["train"] & classes["val"] or classes["train"] & classes["test"]
                or classes["val"] & classes["test"])
    monkeypatch.setattr(mini_imagenet, "read_image_folder", None)  # a second start must not decode
    again = MiniImageNet(config, root=REAL_ROOT)
    assert {split: again.load(split).n_classes for split in REAL_COUNTS} == {
        split: n_classes for split, (_, n_classes) in REAL_COUNTS.items()}


def test_a_split_that_is_not_the_standard_one_says_so():
    """A folder whose CSVs list fewer classes than Ravi & Larochelle's 64/16/20 is labelled
    nonstandard in its rows, so the report never pools it with the real split."""
    from types import SimpleNamespace

    from bench.registry import DATASETS

    cls = DATASETS.get("mini-imagenet")
    adapter = cls.__new__(cls)
    adapter._splits = {split: SimpleNamespace(n_classes=count)
                       for split, count in (("train", 6), ("val", 6), ("test", 6))}
    assert adapter.split_deviation() == "nonstandard: 6/6/6 classes, standard 64/16/20"
    adapter._splits = {split: SimpleNamespace(n_classes=count)
                       for split, count in (("train", 64), ("val", 16), ("test", 20))}
    assert adapter.split_deviation() == ""
