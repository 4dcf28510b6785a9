"""Training and evaluation on synthetic data: every registered method, exactness, determinism."""

import numpy as np
import pytest
import torch

from bench.core.config import Cell, MethodSpec, TrainConfig
from bench.core.episodes import EpisodeSampler, fixed_episodes
from bench.core.model import NumericalFault, build_model, data_shape
from bench.evaluate.episodic import embed_all, evaluate
from bench.registry import METHODS
from bench.train.runner import TrainState, make_optimizer, train

CPU = torch.device("cpu")


def make_cell(method, episodes=10, **train):
    """Methods without episodic training (baseline, baselinepp) get 0 episodes, as `bench run`
    plans them (their backbone then stays at its seeded initialisation here)."""
    episodes = episodes if METHODS.get(method).episodic else 0
    return Cell(MethodSpec(method), "glyphs", (), way=5, shot=2, query=3, test_episodes=20,
                seed=0, train=TrainConfig(episodes=episodes, query=3, **train))


def trained(method, images, episodes=10, prefetch=0, **train_options):
    cell = make_cell(method, episodes, **train_options)
    torch.manual_seed(0)
    model = build_model(cell, 1, **data_shape(images))
    optimizer, scheduler = make_optimizer(model, cell)
    sampler = EpisodeSampler(images, 5, 2, 3, seed=0)
    state = train(model, optimizer, scheduler, sampler, images, TrainState(), cell, CPU,
                  prefetch=prefetch)
    return model, state


def assert_same_weights(first, second):
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("method", METHODS.names())
def test_cached_evaluation_equals_per_episode(method, synthetic):
    """Embedding each test image once gives the same logits as embedding each episode."""
    model, _ = trained(method, synthetic, episodes=5)
    model.eval()
    episodes = fixed_episodes(synthetic, 5, 2, 3, 20, seed=1)
    features = embed_all(model, synthetic.images, CPU)
    with torch.no_grad():
        for i in range(len(episodes)):
            episode = episodes[i]
            batch = synthetic.images[episode.indices()].float() / 255
            direct = model(batch[:10], episode.support_labels(), batch[10:], 5)
            cached = model.head(features[episode.support.reshape(-1)], episode.support_labels(),
                                features[episode.query.reshape(-1)], 5)
            torch.testing.assert_close(cached, direct, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(evaluate(model, synthetic, episodes, CPU),
                                  evaluate(model, synthetic, episodes, CPU, mode="per-episode"))


@pytest.mark.parametrize("method", METHODS.names())
def test_same_seed_same_training(method, synthetic):
    first, first_state = trained(method, synthetic)
    second, second_state = trained(method, synthetic)
    assert [e["loss"] for e in first_state.log] == [e["loss"] for e in second_state.log]
    assert_same_weights(first, second)


def test_prefetching_worker_trains_on_the_same_episodes(synthetic):
    """A worker process sampling 3 episodes ahead changes nothing but the timing."""
    inline, inline_state = trained("protonet", synthetic, episodes=12)
    fetched, fetched_state = trained("protonet", synthetic, episodes=12, prefetch=3)
    assert [e["loss"] for e in fetched_state.log] == [e["loss"] for e in inline_state.log]
    assert_same_weights(inline, fetched)


def test_bf16_training_runs_and_differs_from_fp32(synthetic):
    """bfloat16 autocast: finite losses, other arithmetic (so another model id), fp32 evaluation."""
    fp32, _ = trained("trm", synthetic, episodes=4)
    bf16, state = trained("trm", synthetic, episodes=4, precision="bf16")
    assert all(np.isfinite(entry["loss"]) for entry in state.log)
    assert not all(torch.equal(a, b) for a, b in zip(fp32.state_dict().values(),
                                                      bf16.state_dict().values()))
    assert all(p.dtype == torch.float32 for p in bf16.parameters())
    assert make_cell("trm", precision="bf16").training_id != make_cell("trm").training_id
    assert "precision" not in make_cell("trm").training()["train"]  # ids from before stay valid


@pytest.mark.parametrize("prefetch", [0, 2])
def test_interrupted_training_resumes_to_identical_weights(synthetic, prefetch):
    cell = make_cell("protonet", episodes=8)
    straight, _ = trained("protonet", synthetic, episodes=8)
    torch.manual_seed(0)
    model = build_model(cell, 1)
    optimizer, scheduler = make_optimizer(model, cell)
    sampler = EpisodeSampler(synthetic, 5, 2, 3, seed=0)
    state = TrainState()
    calls = iter([False, False, False, True])
    train(model, optimizer, scheduler, sampler, synthetic, state, cell, CPU,
          should_stop=lambda: next(calls, False), prefetch=prefetch)
    assert state.episode == 4
    saved = (model.state_dict(), optimizer.state_dict(), scheduler.state_dict(), sampler.state())
    torch.manual_seed(123)
    resumed = build_model(cell, 1)
    resumed.load_state_dict(saved[0])
    optimizer, scheduler = make_optimizer(resumed, cell)
    optimizer.load_state_dict(saved[1])
    scheduler.load_state_dict(saved[2])
    sampler = EpisodeSampler(synthetic, 5, 2, 3, seed=7)
    sampler.set_state(saved[3])
    train(resumed, optimizer, scheduler, sampler, synthetic, state, cell, CPU, prefetch=prefetch)
    assert_same_weights(straight, resumed)


def test_nan_loss_stops_with_numerical_fault(synthetic):
    cell = make_cell("protonet", episodes=3, lr=1e30)
    model = build_model(cell, 1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(float("nan"))
    optimizer, scheduler = make_optimizer(model, cell)
    with pytest.raises(NumericalFault, match="training loss is nan"):
        train(model, optimizer, scheduler, EpisodeSampler(synthetic, 5, 2, 3, 0), synthetic,
              TrainState(), cell, CPU)


def test_a_checkpoint_precedes_each_validation(synthetic):
    """A stop during a (long) validation resumes from just before it, not from the last
    periodic checkpoint: training saves one before every step that ends in a validation."""
    cell = make_cell("protonet", episodes=12, val_every=5, checkpoint_every=4)
    torch.manual_seed(0)
    model = build_model(cell, channels=1)
    optimizer, scheduler = make_optimizer(model, cell)
    state, saved = TrainState(), []
    train(model, optimizer, scheduler, EpisodeSampler(synthetic, 5, 2, 3, seed=0), synthetic,
          state, cell, CPU, validate=lambda: 0.5, checkpoint=lambda: saved.append(state.episode))
    # periodic: 4, 8, 12; before the validations of episodes 5, 10, 12: 4 (already), 9, 11
    assert saved == [4, 8, 9, 11, 12]


@pytest.mark.parametrize("method", ["protonet", "trm"])
def test_a_resumed_evaluation_gives_the_uninterrupted_accuracies(method, synthetic, monkeypatch,
                                                                 tmp_path):
    """Episodes saved by an interrupted test are taken over, the rest evaluated: the same array
    as one uninterrupted evaluation, and the head runs only for the episodes not yet done."""
    import bench.evaluate.episodic as episodic
    from bench.evaluate.cell import SavedTest, model_fingerprint

    monkeypatch.setattr(episodic, "REPORT_EVERY", 7)
    model, _ = trained(method, synthetic, episodes=3)
    episodes = fixed_episodes(synthetic, 5, 2, 3, 30, seed=1)
    straight = evaluate(model, synthetic, episodes, CPU)
    saved = SavedTest(tmp_path / "test.npz", f"{episodes.hash}:{model_fingerprint(model)}")
    snapshots = []

    class Interrupted(Exception):
        pass

    def save_then_stop(so_far):
        saved.save(so_far, 12.5)
        snapshots.append(len(so_far))
        if len(snapshots) == 2:
            raise Interrupted
    with pytest.raises(Interrupted):
        evaluate(model, synthetic, episodes, CPU, save=save_then_stop)
    done, seconds = saved.load()
    assert snapshots == [7, 14] and seconds == 12.5 and done.tolist() == straight[:14].tolist()
    calls = []
    head = model.head
    monkeypatch.setattr(model, "head", lambda *args: calls.append(1) or head(*args))
    np.testing.assert_array_equal(evaluate(model, synthetic, episodes, CPU, done=done), straight)
    assert len(calls) == 30 - 14
    # progress of another model (or other episodes), or an unreadable file, is not taken over
    assert SavedTest(saved.path, f"{episodes.hash}:other").load() == (None, 0.0)
    saved.path.write_bytes(b"not an npz")
    assert saved.load() == (None, 0.0)
    assert model_fingerprint(model) != model_fingerprint(trained(method, synthetic, 4)[0])
