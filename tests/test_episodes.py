"""Episodes: seeded through learn2learn, independent of the global random module, hashed."""

import random

import pytest
import torch

from bench.core.episodes import EpisodeSampler, fixed_episodes
from bench.errors import BenchError


def test_episode_structure(synthetic):
    episode = EpisodeSampler(synthetic, way=5, shot=2, query=3, seed=0).sample()
    assert episode.support.shape == (5, 2) and episode.query.shape == (5, 3)
    labels = torch.as_tensor(synthetic.labels)
    for row in range(5):
        classes = labels[torch.cat([episode.support[row], episode.query[row]])]
        assert len(set(classes.tolist())) == 1  # one class per row
    assert len(set(labels[episode.support[:, 0]].tolist())) == 5  # five different classes
    assert len(set(episode.indices().tolist())) == 25  # no image twice
    assert episode.support_labels().tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_same_seed_same_episodes_whatever_the_global_random_state(synthetic):
    random.seed(1)
    first = [EpisodeSampler(synthetic, 5, 1, 5, seed=3).sample() for _ in range(1)][0]
    random.seed(2)
    sampler = EpisodeSampler(synthetic, 5, 1, 5, seed=3)
    state = random.getstate()
    second = sampler.sample()
    assert random.getstate() == state  # the global stream is left untouched
    assert torch.equal(first.support, second.support) and torch.equal(first.query, second.query)


def test_sampler_state_resumes_the_stream(synthetic):
    sampler = EpisodeSampler(synthetic, 5, 1, 5, seed=0)
    sampler.sample()
    saved = sampler.state()
    expected = [sampler.sample().indices() for _ in range(3)]
    resumed = EpisodeSampler(synthetic, 5, 1, 5, seed=99)
    resumed.set_state(saved)
    assert all(torch.equal(a, resumed.sample().indices()) for a in expected)


def test_fixed_episodes_are_hashed_by_seed(synthetic):
    a = fixed_episodes(synthetic, 5, 1, 5, 20, seed=0)
    b = fixed_episodes(synthetic, 5, 1, 5, 20, seed=0)
    c = fixed_episodes(synthetic, 5, 1, 5, 20, seed=1)
    assert a.hash == b.hash and torch.equal(a.support, b.support)
    assert a.hash != c.hash
    assert len(a) == 20 and a[3].support.shape == (5, 1)
    assert fixed_episodes(synthetic, 5, 1, 5, 21, seed=0).hash != a.hash


@pytest.mark.parametrize("way, shot, query, message", [
    (13, 1, 5, "way=13 is more than the 12 classes"),
    (5, 10, 11, "shot+query=10+11 is more than the 20 images"),
    (5, 0, 5, "shot must be a positive integer"),
])
def test_impossible_episode_shapes_are_one_line_errors(synthetic, way, shot, query, message):
    with pytest.raises(BenchError, match=message.replace("+", r"\+")):
        EpisodeSampler(synthetic, way, shot, query, seed=0)
