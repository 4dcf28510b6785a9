"""Supervised pre-training of a backbone on all base classes, shared between the cells that use it.

Chen et al. 2019 (A Closer Look at Few-shot Classification) train Baseline and Baseline++ as plain
classifiers: the backbone and a classifier over every training class, on mini-batches of training
images (Adam, lr 1e-3, batch 16; 400 epochs on miniImageNet, 5 on Omniglot), then drop the
classifier. Here any method may start from such a backbone (``--pretrain-epochs N``); Baseline and
Baseline++ require it. The classifier is linear, or Baseline++'s scaled cosine (class-wise
learnable norms, scale 2 up to 200 classes, else 10) for methods that declare
``pretrain_classifier = "cosine"``; it sees the globally average-pooled feature map.

The weights depend only on the backbone, the classifier kind, the dataset (options and training
files), the seed and the pre-training settings (``identity``), so they are trained once and stored
in DIR/pretrained/<digest>.pt for every cell with that identity (a lock keeps two concurrent runs
from training them twice). Training is resumable like episodic training: DIR/checkpoints/
pretrain-<digest>.pt every ``CHECKPOINT_EVERY`` batches and on a stop. The torch random state is
forked, so a cell trains the same episodes after pre-training whether it computed the backbone or
loaded it.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench import results
from bench.core.config import Cell
from bench.core.model import NumericalFault, Progress, to_float
from bench.core.models import read_payload, write_payload
from bench.data import ImageSet
from bench.interrupt import STOP, Stopped
from bench.methods._finetune import CosineClassifier
from bench.methods.backbones import backbone_channels, make_backbone
from bench.results import digest

CHECKPOINT_EVERY = 200  # batches between resumable checkpoints
PROGRESS_EVERY = 10  # batches between progress reports within an epoch


class PretrainInterrupted(Stopped):
    """Pre-training stopped on a signal after saving its checkpoint."""


def identity(cell: Cell, classifier: str, train_data: str) -> dict:
    """Everything the pre-trained weights depend on."""
    train = cell.train
    return {"backbone": cell.method_config().backbone, "classifier": classifier,
            "dataset": cell.dataset, "dataset_params": asdict(cell.dataset_config()),
            "train_data": train_data, "seed": cell.seed, "epochs": train.pretrain_epochs,
            "batch": train.pretrain_batch, "lr": train.pretrain_lr,
            "precision": train.precision}


def pretrained_path(out_dir: Path, key: str) -> Path:
    return Path(out_dir) / "pretrained" / f"{key}.pt"


def checkpoint_path(out_dir: Path, key: str) -> Path:
    return Path(out_dir) / "checkpoints" / f"pretrain-{key}.pt"


_RETRAINED: set[tuple[str, str]] = set()  # (out dir, key) pre-trained again in this process


def pretrain_into(model, cell: Cell, train_set: ImageSet, out_dir: Path, device: torch.device,
                  augment=None, should_stop=lambda: False, retrain: bool = False,
                  progress: Progress | None = None) -> dict | None:
    """Load the cell's pre-trained backbone into ``model.backbone``, training it first if no
    cell has yet (``retrain``: --force, trains it again once per process); None when the cell
    has no pre-training. Returns the pre-training record."""
    if not cell.train.pretrain_epochs:
        return None
    ident = identity(cell, model.pretrain_classifier, train_set.fingerprint())
    key = digest(ident)
    path = pretrained_path(out_dir, key)
    with results.locked(out_dir, f"locks/pretrain-{key}.lock"):
        if retrain and (str(out_dir), key) not in _RETRAINED:
            path.unlink(missing_ok=True)
            checkpoint_path(out_dir, key).unlink(missing_ok=True)
            _RETRAINED.add((str(out_dir), key))
        if not path.exists():
            payload = train_backbone(ident, train_set, checkpoint_path(out_dir, key), device,
                                     augment, should_stop, cell.describe(),
                                     progress or Progress())
            with STOP.phase(f"saving the pre-trained backbone of {cell.describe()}", defer=True):
                write_payload(path, payload)
            checkpoint_path(out_dir, key).unlink(missing_ok=True)
        payload = read_payload(path, ident, "pre-trained backbone")
    model.backbone.load_state_dict(payload["backbone"])
    return {"pretrained": key, "pretrain_seconds": payload["seconds"]}


def train_backbone(ident: dict, train_set: ImageSet, checkpoint: Path, device: torch.device,
                   augment, should_stop, what: str, progress: Progress | None = None) -> dict:
    """Supervised training of a fresh backbone and classifier over all classes of ``train_set``;
    the global torch random state is left as it was."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(ident["seed"])
        backbone = make_backbone(ident["backbone"], train_set.images.shape[1]).to(
            device, memory_format=torch.channels_last)
        classes, width = train_set.n_classes, backbone_channels(ident["backbone"])
        classifier = (CosineClassifier(width, classes) if ident["classifier"] == "cosine"
                      else nn.Linear(width, classes)).to(device)
        parameters = [*backbone.parameters(), *classifier.parameters()]
        optimizer = torch.optim.Adam(parameters, lr=ident["lr"])
        state = {"epoch": 0, "batch": 0, "seconds": 0.0, "log": []}
        if checkpoint.exists():
            stored = read_payload(checkpoint, ident, "pre-training checkpoint")
            backbone.load_state_dict(stored["backbone"])
            classifier.load_state_dict(stored["classifier"])
            optimizer.load_state_dict(stored["optimizer"])
            torch.set_rng_state(stored["torch_rng"])
            state = stored["state"]

        def save() -> None:
            write_payload(checkpoint, {"config": ident, "backbone": backbone.state_dict(),
                                       "classifier": classifier.state_dict(),
                                       "optimizer": optimizer.state_dict(),
                                       "torch_rng": torch.get_rng_state(), "state": state})

        kept = f"its checkpoint is saved in {checkpoint.parent}"
        with STOP.phase(f"pre-training the backbone of {what}", kept, defer=True):
            epochs(backbone, classifier, optimizer, train_set, ident, state, device, augment,
                   save, should_stop, progress or Progress())
        if state["epoch"] < ident["epochs"]:
            raise PretrainInterrupted(f"stopped while pre-training the backbone of {what}: "
                                      f"{kept}; rerun the same command to resume")
    return {"config": ident, "backbone": backbone.state_dict(), "seconds": state["seconds"],
            "log": state["log"]}


def epochs(backbone, classifier, optimizer, train_set: ImageSet, ident: dict, state: dict,
           device, augment, save, should_stop, progress: Progress) -> None:
    """The remaining epochs from ``state`` (epoch, batch within it); each epoch's order is a
    permutation seeded by (seed, epoch), so a resumed epoch goes on in the same order."""
    labels = torch.from_numpy(train_set.labels)
    batch_size, start = ident["batch"], time.perf_counter() - state["seconds"]
    resumed_at, images = time.perf_counter(), 0

    def rate() -> float | None:
        seconds = time.perf_counter() - resumed_at
        return images / seconds if images and seconds > 0 else None

    backbone.train()
    classifier.train()
    progress.pretrained(state["epoch"], ident["epochs"], float("nan"))
    while state["epoch"] < ident["epochs"]:
        order = torch.from_numpy(np.random.default_rng([ident["seed"], state["epoch"]])
                                 .permutation(len(labels)))
        batches = order.split(batch_size)
        total = 0.0
        while state["batch"] < len(batches):
            rows = batches[state["batch"]]
            total += step(backbone, classifier, optimizer, train_set.images[rows], labels[rows],
                          device, augment, ident["precision"])
            state["batch"] += 1
            images += len(rows)
            if state["batch"] % PROGRESS_EVERY == 0:
                progress.pretrained(state["epoch"] + state["batch"] / len(batches),
                                    ident["epochs"], float("nan"), rate())
            state["seconds"] = time.perf_counter() - start
            stopping = should_stop()
            if stopping or state["batch"] % CHECKPOINT_EVERY == 0:
                save()
            if stopping:
                return
        state["log"].append({"epoch": state["epoch"] + 1, "loss": total / len(batches)})
        state["epoch"], state["batch"] = state["epoch"] + 1, 0
        save()
        progress.pretrained(state["epoch"], ident["epochs"], state["log"][-1]["loss"], rate())


def step(backbone, classifier, optimizer, pixels: torch.Tensor, labels: torch.Tensor, device,
         augment, precision: str) -> float:
    batch = to_float(pixels, device)
    if augment is not None:
        batch = augment(batch)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        features = backbone(batch.contiguous(memory_format=torch.channels_last)).mean((2, 3))
        logits = classifier(features).float()
    loss = F.cross_entropy(logits, labels.to(device))
    if not torch.isfinite(loss):
        raise NumericalFault(f"pre-training loss is {loss.item()}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def preparation_key(cell: Cell) -> str:
    """The name of the cell's pre-training for the executors (equal for every cell that shares
    it); the stored file's own digest also covers the training data's fingerprint."""
    from bench.registry import METHODS

    classifier = METHODS.get(cell.method.name).pretrain_classifier
    return "pretrain-" + digest(identity(cell, classifier, train_data=""))


def prepare(cell: Cell, options, retrain: bool = False, adapters: dict | None = None,
            progress: Progress | None = None) -> None:
    """Pre-train ``cell``'s backbone into the storage directory unless it is stored (then this
    returns after loading it): the step that bench.execute.jobs runs once before the trainings
    that share it, inline on the local path (``adapters``: the process's dataset cache, so the
    training split is loaded once for the pre-training and the trainings after it) and as its
    own task on Ray. ``progress`` hears its epochs and images/s."""
    from bench.core.cells import adapter_for
    from bench.core.model import build_model, data_shape

    adapter = adapter_for(cell, options, {} if adapters is None else adapters)
    train_set = adapter.load("train")
    model = build_model(cell, adapter.channels, **data_shape(train_set))
    device = torch.device(options.device)
    pretrain_into(model.to(device), cell, train_set, options.storage_dir, device,
                  adapter.train_augmentation(), STOP, retrain, progress)
