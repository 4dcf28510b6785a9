"""Every registered method learns far above chance on a tiny glyph task, in seconds.

Methods trained only by supervised pre-training (baseline, baselinepp: ``requires_pretraining``)
get a budget of the same order instead of the 80 episodes (2,400 images): two epochs over the
first 1,600 training images (200 classes), batch 32 (3,200 images)."""

import pytest
import torch
from bench.datasets.glyphs import Glyphs

from bench.core.config import Cell, MethodSpec, TrainConfig
from bench.core.episodes import EpisodeSampler, fixed_episodes
from bench.core.model import build_model, data_shape
from bench.data import ImageSet
from bench.evaluate.episodic import evaluate
from bench.registry import METHODS
from bench.train.pretrain import pretrain_into
from bench.train.runner import TrainState, make_optimizer, train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def glyphs(glyph_cache):
    dataset = Glyphs(Glyphs.Config(instances=8), cache_dir=glyph_cache)
    return dataset.load("train"), dataset.load("test")


PRETRAIN_IMAGES = 1600


@pytest.mark.parametrize("method", METHODS.names())
def test_learns_far_above_chance(method, glyphs, tmp_path):
    train_set, test_set = glyphs
    pretrains = METHODS.get(method).requires_pretraining
    cell = Cell(MethodSpec(method), "glyphs", (), 5, 1, 5, 50, 0,
                TrainConfig(episodes=0 if pretrains else 80, query=5,
                            pretrain_epochs=2 if pretrains else 0, pretrain_batch=32))
    torch.manual_seed(0)
    model = build_model(cell, 1, **data_shape(train_set))
    if pretrains:
        subset = ImageSet(train_set.images[:PRETRAIN_IMAGES], train_set.labels[:PRETRAIN_IMAGES],
                          train_set.class_names[:int(train_set.labels[PRETRAIN_IMAGES - 1]) + 1],
                          train_set.name)
        pretrain_into(model, cell, subset, tmp_path, CPU)
    optimizer, scheduler = make_optimizer(model, cell)
    train(model, optimizer, scheduler, EpisodeSampler(train_set, 5, 1, 5, seed=0), train_set,
          TrainState(), cell, CPU)
    accuracy = evaluate(model, test_set, fixed_episodes(test_set, 5, 1, 5, 50, seed=0), CPU).mean()
    assert accuracy > 0.5, f"{method}: {accuracy:.2f} after 80 episodes (chance 0.20)"
