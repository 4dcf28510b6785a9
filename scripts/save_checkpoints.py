"""Commits the unfinished trainings of the fair-answer sets (their checkpoints/ folders, which
.gitignore lets through), so a later session that starts from a fresh checkout resumes them
instead of starting again: a TRM 5-shot training outlasts a 3-hour session. Run it shortly before
a session ends, while the queue runs (checkpoints are written atomically every 100 episodes).

    .venv/bin/python scripts/save_checkpoints.py          # commit them, naming each training
    .venv/bin/python scripts/save_checkpoints.py --dry-run  # only list them

Finished cells delete their checkpoints, so a later run of this script commits the deletions.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SETS = ["results/reference/mini-fair", "results/reference/cub-fair",
        "results/reference/mini-fair-fp32"]


def describe(path: Path) -> str:
    """"<label> <dataset> <shot>-shot seed <s>: episode <e> of <cap>" for a training checkpoint,
    "pre-training of <backbone> <dataset> seed <s> (<precision>): <e> of <n> epochs done, <b>
    batches into the next" for a pre-training one."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    config, state = payload.get("config", {}), payload.get("state", {})
    if "backbone" in config and "epochs" in config:  # a pre-training (bench/train/pretrain.py)
        return (f"pre-training of {config['backbone']} {config.get('dataset')} seed "
                f"{config.get('seed')} ({config.get('precision')}): {state.get('epoch')} of "
                f"{config['epochs']} epochs done, {state.get('batch', 0)} batches into the next")
    train = config.get("train", {})
    return (f"{config.get('method_label', config.get('method'))} {config.get('dataset')} "
            f"{train.get('shot')}-shot seed {config.get('seed')}: episode "
            f"{state.get('episode')} of {train.get('episodes')}")


def tracked(folder: Path) -> bool:
    listed = subprocess.run(["git", "ls-files", "--", str(folder.relative_to(ROOT))], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    return bool(listed.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="list, commit nothing")
    args = parser.parse_args()
    folders = [ROOT / name / "checkpoints" for name in SETS]
    found = [(path, describe(path)) for folder in folders if folder.is_dir()
             for path in sorted(folder.glob("*.pt"))]
    for path, what in found:
        print(f"{path.relative_to(ROOT)}: {what}")
    if args.dry_run:
        return
    # git refuses a pathspec that matches nothing: only folders that exist or were committed
    paths = [str(folder.relative_to(ROOT)) for folder in folders
             if folder.is_dir() or tracked(folder)]
    if not paths:
        print("nothing to commit")
        return
    subprocess.run(["git", "add", "-A", "--", *paths], cwd=ROOT, check=True)
    staged = subprocess.run(["git", "diff", "--cached", "--quiet", "--", *paths], cwd=ROOT)
    if staged.returncode == 0:
        print("nothing to commit")
        return
    message = ("checkpoints of unfinished trainings, to resume in a fresh checkout: "
               + ("; ".join(what for _, what in found) or "none left (cells finished)"))
    done = subprocess.run(["git", "commit", "-q", "-m", message, "--", *paths], cwd=ROOT)
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
