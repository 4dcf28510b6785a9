"""The long-run queues (benchmarks/fair_answer.sh, benchmarks/precision_study.sh) run with a
stand-in `bench` that records its calls: the order the READMEs promise, the options every call
carries, and the refusal on a CPU without native bf16."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_queue(script, tmp_path, **env):
    calls = tmp_path / "calls"
    fake = tmp_path / "bench"
    fake.write_text(f'#!/usr/bin/env bash\necho "$*" >> {calls}\n'
                    'if [ "$1" = report ]; then echo "report of $2"; fi\n')
    fake.chmod(0o755)
    sets = {name: tmp_path / name for name in ("MINI", "CUB", "M2C", "OUT", "REF")}
    for folder in sets.values():
        folder.mkdir()
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / script)], capture_output=True,
                          text=True, env={**os.environ, "BENCH": str(fake),
                                          **{k: str(v) for k, v in sets.items()}, **env})
    lines = calls.read_text().splitlines() if calls.exists() else []
    return done, lines, sets


def option(line, name):
    words = line.split()
    return words[words.index(name) + 1] if name in words else None


def test_the_fair_queue_trains_seed_0_per_shot_models_first(tmp_path):
    done, calls, sets = run_queue("fair_answer.sh", tmp_path, FAIR_ANYWAY="1")
    assert done.returncode == 0, done.stderr
    runs = [line for line in calls if line.startswith("run ")]
    assert all("--precision bf16" in line for line in runs)
    first = [(option(line, "--preset"), option(line, "--shots"), option(line, "--seed"),
              "--test-dataset" in line) for line in runs[:6]]
    assert first == [("mini-fair", "5", "0", False), ("mini-fair", "5", "0", True),
                     ("cub-fair", "5", "0", False), ("mini-fair", "1", "0", False),
                     ("mini-fair", "1", "0", True), ("cub-fair", "1", "0", False)]
    assert all(option(line, "--methods") == "protonet(temperature=64),cosine,trm"
               for line in runs[:18])
    seeds = [option(line, "--seed") for line in runs[:18]]
    assert seeds == ["0"] * 6 + ["1"] * 6 + ["2"] * 6
    relatives = [option(line, "--methods") for line in runs[18:]]
    assert relatives[0] == "ctx,dn4" and set(relatives) == {"ctx,dn4",
                                                            "can,frn,baseline,baselinepp"}
    assert all(option(line, "--seed") == "0" for line in runs[18:])
    cross = [line for line in runs if "--test-dataset" in line]
    assert all(option(line, "--models-from") == str(sets["MINI"]) for line in cross)
    assert (sets["MINI"] / "report.md").read_text() == f"report of {sets['MINI']}\n"


@pytest.mark.skipif("avx512_bf16" in Path("/proc/cpuinfo").read_text()
                    or "amx_bf16" in Path("/proc/cpuinfo").read_text(),
                    reason="this CPU has native bf16: the queue would start")
def test_the_fair_queue_refuses_a_cpu_without_native_bf16(tmp_path):
    done, calls, _ = run_queue("fair_answer.sh", tmp_path)
    assert done.returncode == 2 and calls == []
    assert "no native bf16" in done.stderr and "precision_study.sh" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_precision_study_trains_fp32_pairs_of_mini_fair(tmp_path):
    done, calls, sets = run_queue("precision_study.sh", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no pre-trained backbones" in done.stderr  # MINI is empty here: said, not hidden
    runs = [line for line in calls if line.startswith("run ")]
    assert all(option(line, "--precision") == "fp32" and option(line, "--preset") == "mini-fair"
               and option(line, "--out") == str(sets["OUT"]) for line in runs)
    plan = [(option(line, "--seed"), option(line, "--shots"), option(line, "--methods"))
            for line in runs]
    pair = "protonet(temperature=64),cosine"
    assert plan == ([("0", "5", pair), ("0", "1", f"{pair},trm")] + [(seed, "5", pair) for seed in "12"]
                    + [(seed, "1", pair) for seed in "12"] + [(seed, "1", "trm") for seed in "12"])
    assert (sets["OUT"] / "report.md").read_text() == f"report of {sets['OUT']}\n"
