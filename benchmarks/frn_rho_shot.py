"""FRN trained at 1-shot, tested at 1- and 5-shot: the learned ρ = e^β against ρ = 1.

The mini-cpu FRN model (trained on 5-way 1-shot episodes) scores 42.5% at 1-shot and 3.2% at
5-shot, far below the 20% of chance. FRN reconstructs a query as ρ·Q·P_c, and training raised ρ
above 1. At 5-shot the true class's 125 support positions (d = 64) reconstruct a query almost
exactly, so its error is about (ρ − 1)²‖q‖², while a class that spans the query less well
lands nearer to ρ·t ≈ 1 and wins. This script reloads the stored model, prints α, β, γ, and
evaluates the same 2,000 test episodes of both cells with the learned ρ and with β = 0 (ρ = 1).
It only reads the run directory and writes nothing.

    .venv/bin/python benchmarks/frn_rho_shot.py [--data-root ../shared/data/miniimagenet]
"""

import argparse
import time
from unittest import mock

import torch
from click.testing import CliRunner

from bench.cli import cli
from bench.core import models
from bench.core.cells import adapter_for
from bench.core.episodes import fixed_episodes
from bench.core.model import Progress
from bench.evaluate.episodic import evaluate
from bench.execute import local
from bench.train import cell as train_cell


def planned(data_root: str, out: str):
    """The cells and options `bench run` would use, without running them."""
    captured = {}

    def capture(cells, options, **_):
        captured.update(cells=cells, options=options)

    with mock.patch.object(local, "execute", capture):
        result = CliRunner().invoke(cli, [
            "run", "--preset", "mini-cpu", "--data-root", data_root, "--out", out,
            "--methods", "frn", "--precision", "fp32", "--threads", "2"])
    if "cells" not in captured:
        raise SystemExit(f"could not plan the cells: {result.output}{result.exception!r}")
    return captured["cells"], captured["options"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/data/miniimagenet")
    parser.add_argument("--out", default="results/reference/mini-imagenet-cpu")
    args = parser.parse_args()
    torch.set_num_threads(2)
    cells, options = planned(args.data_root, args.out)
    adapters = {}
    device = torch.device("cpu")
    for cell in sorted(cells, key=lambda c: c.shot):
        adapter = adapter_for(cell, options, adapters)
        test_set = adapter.load("test")
        episodes = fixed_episodes(test_set, cell.way, cell.shot, cell.query, cell.test_episodes,
                                  cell.seed)
        if not models.model_path(options.storage_dir, cell).exists():
            raise SystemExit(f"no stored frn model for {cell.describe()}: run the mini-cpu preset")
        model, _ = train_cell.trained_model(cell, adapter, options, Progress(), lambda: False,
                                            False)
        learned = model.beta.detach().clone()
        print(f"{cell.describe()}: alpha {model.alpha.item():+.4f}  beta {learned.item():+.4f} "
              f"(rho {learned.exp().item():.3f})  gamma {model.gamma.item():+.4f}  "
              f"episodes {episodes.hash}")
        for label, beta in (("learned rho", learned), ("rho = 1", torch.zeros(()))):
            with torch.no_grad():
                model.beta.copy_(beta)
            start = time.perf_counter()
            accuracies = evaluate(model, test_set, episodes, device) * 100
            ci = 1.96 * accuracies.std(ddof=1) / len(accuracies) ** 0.5
            print(f"  {cell.shot}-shot, {label:11s}: {accuracies.mean():6.2f} ± {ci:.2f} "
                  f"({len(accuracies)} episodes, {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
