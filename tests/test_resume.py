"""Nothing lost: SIGKILL and resume, SIGTERM, concurrent writers, stale checkpoints."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from helpers import load_script, without_progress

BENCH = str(Path(sys.executable).parent / "bench")
ARGS = ["run", "--methods", "protonet", "--shots", "1", "--train-episodes", "60",
        "--checkpoint-every", "10", "--val-every", "20", "--val-episodes", "10",
        "--test-episodes", "30", "--train-query", "5", "--query", "5", "-D", "instances=8"]


def start(out, cache, *extra):
    env = {**os.environ, "FEWSHOT_BENCH_CACHE": str(cache)}
    return subprocess.Popen([BENCH, *ARGS, *extra, "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(process, out, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if list((out / "checkpoints").glob("*.pt")):
            return
        if process.poll() is not None:
            raise AssertionError(f"run ended before a checkpoint: {process.communicate()}")
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared")


def finish(process):
    stdout, stderr = process.communicate(timeout=600)
    return process.returncode, stdout, stderr


def test_sigkill_then_rerun_gives_the_uninterrupted_numbers(tmp_path, glyph_cache):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    code, _, stderr = finish(start(straight, glyph_cache))
    assert code == 0, stderr
    process = start(killed, glyph_cache)
    wait_for_checkpoint(process, killed)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "results.csv").exists()
    code, _, stderr = finish(start(killed, glyph_cache))
    assert code == 0, stderr
    a, b = pd.read_csv(straight / "results.csv"), pd.read_csv(killed / "results.csv")
    assert len(b) == 1
    assert list(a["acc"]) == list(b["acc"]) and list(a["ci95"]) == list(b["ci95"])
    assert not list((killed / "checkpoints").glob("*.pt"))


def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(tmp_path, glyph_cache):
    out = tmp_path / "term"
    # Training far longer than the test waits, so the signal lands in training on any machine
    # (60 episodes finished within the second on an idle one, and a stop in evaluation keeps the
    # stored model, not a checkpoint).
    process = start(out, glyph_cache, "--checkpoint-every", "1000", "--train-episodes", "100000")
    deadline = time.time() + 300
    while not (out / "locks").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    code, _, stderr = finish(process)
    if code == 0:  # finished before the signal arrived: nothing to check
        return
    assert code == 143  # 128 + SIGTERM, as shells report it
    assert "rerun the same command to resume" in stderr
    assert len(without_progress(stderr)) == 1
    assert list((out / "checkpoints").glob("*.pt"))


def test_two_concurrent_runs_write_every_row_once(tmp_path, glyph_cache):
    out = tmp_path / "shared"
    extra = ["--methods", "protonet,cosine", "--train-episodes", "20"]
    first, second = start(out, glyph_cache, *extra), start(out, glyph_cache, *extra)
    ran = 0
    for process in (first, second):
        code, stdout, stderr = finish(process)
        assert code == 0, stderr
        ran += int(re.search(r"(\d+) cells run", stdout).group(1))
    assert ran == 2  # each cell counted by the run that wrote it, not by both
    frame = pd.read_csv(out / "results.csv")
    assert sorted(frame["method"]) == ["cosine", "protonet"]
    assert frame["cell_id"].is_unique
    assert len(list((out / "models").glob("*.pt"))) == 2


def test_the_fair_sets_checkpoints_travel_in_git_and_are_named(tmp_path):
    """.gitignore lets the fair-answer sets' checkpoints through (and no other set's), and
    scripts/save_checkpoints.py names each training it would commit."""
    import shutil

    import torch

    root = Path(__file__).resolve().parents[1]
    if shutil.which("git") and (root / ".git").exists():
        paths = ["results/reference/mini-fair/checkpoints/x.pt",
                 "results/reference/cub-fair/checkpoints/pretrain-x.pt",
                 "results/reference/cub-cpu/checkpoints/x.pt",
                 "results/reference/mini-fair/checkpoints/.x.pt.tmp123",
                 "results/reference/mini-fair/locks/x"]
        done = subprocess.run(["git", "check-ignore", *paths], cwd=root, capture_output=True,
                              text=True)
        assert done.stdout.split() == paths[2:]
    script = load_script("scripts/save_checkpoints.py")
    path = tmp_path / "abc.pt"
    torch.save({"config": {"method": "trm", "method_label": "trm", "dataset": "cub", "seed": 1,
                           "train": {"shot": 5, "episodes": 6000}},
                "state": {"episode": 2300}}, path)
    assert script.describe(path) == "trm cub 5-shot seed 1: episode 2300 of 6000"
    torch.save({"config": {"backbone": "conv64f", "dataset": "cub", "seed": 2, "epochs": 40,
                           "precision": "bf16"}, "state": {"epoch": 7, "batch": 30}}, path)
    assert script.describe(path) == ("pre-training of conv64f cub seed 2 (bf16): 7 of 40 epochs "
                                     "done, 30 batches into the next")


def test_save_checkpoints_commits_them_and_later_their_deletion(tmp_path):
    """scripts/save_checkpoints.py in a repository where only one fair set has checkpoints: it
    commits that one (naming the training), then its deletion, then nothing."""
    import shutil

    import torch

    root = Path(__file__).resolve().parents[1]
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(root / "scripts" / "save_checkpoints.py", repo / "scripts")
    shutil.copy(root / ".gitignore", repo)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}

    def git(*args):
        return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True,
                              text=True, check=True).stdout

    def save():
        return subprocess.run([sys.executable, str(repo / "scripts" / "save_checkpoints.py")],
                              cwd=repo, env=env, capture_output=True, text=True)

    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "start")
    folder = repo / "results" / "reference" / "mini-fair-fp32" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save({"config": {"method": "cosine", "dataset": "mini-imagenet", "seed": 0,
                           "train": {"shot": 1, "episodes": 4000}},
                "state": {"episode": 700}}, folder / "abc.pt")
    (folder / ".abc.pt.tmp99").write_bytes(b"partial")
    done = save()
    assert done.returncode == 0, done.stderr
    assert git("ls-files", "results") == "results/reference/mini-fair-fp32/checkpoints/abc.pt\n"
    assert "cosine mini-imagenet 1-shot seed 0: episode 700 of 4000" in git("log", "-1",
                                                                            "--format=%s")
    (folder / "abc.pt").unlink()
    done = save()
    assert done.returncode == 0, done.stderr
    assert git("ls-files", "results") == ""
    assert "none left (cells finished)" in git("log", "-1", "--format=%s")
    done = save()
    assert done.returncode == 0 and "nothing to commit" in done.stdout
