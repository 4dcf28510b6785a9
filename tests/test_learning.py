"""Every registered method learns far above chance on a tiny glyph task, in seconds."""

import pytest
import torch

from bench.config import Cell, MethodSpec, TrainConfig
from bench.datasets.glyphs import Glyphs
from bench.episodes import EpisodeSampler, fixed_episodes
from bench.registry import METHODS
from bench.runner import TrainState, build_model, evaluate, make_optimizer, train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def glyphs(glyph_cache):
    dataset = Glyphs(Glyphs.Config(instances=8), cache_dir=glyph_cache)
    return dataset.load("train"), dataset.load("test")


@pytest.mark.parametrize("method", METHODS.names())
def test_learns_far_above_chance(method, glyphs):
    train_set, test_set = glyphs
    cell = Cell(MethodSpec(method), "glyphs", (), 5, 1, 5, 50, 0,
                TrainConfig(episodes=80, query=5))
    torch.manual_seed(0)
    model = build_model(cell, channels=1)
    optimizer, scheduler = make_optimizer(model, cell)
    train(model, optimizer, scheduler, EpisodeSampler(train_set, 5, 1, 5, seed=0), train_set,
          TrainState(), cell, CPU)
    accuracy = evaluate(model, test_set, fixed_episodes(test_set, 5, 1, 5, 50, seed=0), CPU).mean()
    assert accuracy > 0.5, f"{method}: {accuracy:.2f} after 80 episodes (chance 0.20)"
