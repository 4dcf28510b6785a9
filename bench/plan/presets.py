"""Named protocols for `bench run --preset NAME`: option defaults that a command line overrides.

Each preset is the documented way to reproduce a reference table; one cell is reproduced by
adding e.g. `--methods protonet --ways 5 --shots 1` to the preset's command.
"""

from __future__ import annotations

from bench.errors import BenchError

_OMNIGLOT = {
    "dataset": "omniglot", "methods": "protonet,cosine,trm", "ways": "5,20", "shots": "1,5",
    "query": "15", "test_episodes": "1000", "lr_step": 2000, "lr_gamma": 0.5,
}

# CUB-200-2011, Chen et al.'s split (the loader's default) and test episodes: 5-way 1/5-shot,
# 15 queries, 2,000 episodes, so their rows pair with each other and with cross-domain rows.
_CUB = {"dataset": "cub", "methods": "protonet,cosine,trm", "ways": "5", "shots": "1,5",
        "query": "15", "test_episodes": "2000"}
_MINI = {"dataset": "mini-imagenet", "methods": "protonet,trm,cosine", "ways": "5",
         "shots": "1,5", "query": "15", "test_episodes": "2000"}

# The fair-answer sets: each method at its test shot (no train_shot), the budget rule
# (validation every 250 episodes on 200; stop once the best rose ≤ 0.5 points over 1500
# episodes, all at the schedule's last learning rate before the cap), three training runs on
# the test episodes of seed 0.
_FAIR = {"methods": "protonet(temperature=64),cosine,trm", "train_way": "5", "train_query": "15",
         "lr_step": 2000, "lr_gamma": 0.5, "val_every": 250, "val_episodes": 200,
         "plateau_window": 1500, "plateau_delta": 0.5, "pretrain_batch": 64, "seeds": "0,1,2",
         "test_seed": "0", "threads": 2}

PRESETS: dict[str, dict] = {
    "omniglot-snell": {
        "about": "Snell et al. 2017 Omniglot protocol: vinyals split with rotations, 28×28, "
                 "Conv-4 (ProtoNet), 60-way 5-query training, Adam 1e-3 halved every 2000 "
                 "episodes, 1000 test episodes of 15 queries at 5- and 20-way (GPU-sized)",
        "options": {**_OMNIGLOT, "train_way": "60", "train_query": "5",
                    "train_episodes": "20000", "val_every": 1000, "val_episodes": 200},
    },
    "omniglot-cpu": {
        "about": "the Omniglot protocol sized for about an hour on 2 CPU cores: as "
                 "omniglot-snell but 20-way 5-query training for 4000 episodes, in bfloat16 "
                 "autocast where the CPU has it natively (--precision auto: 1.7× faster on "
                 "AMX/AVX-512-BF16 Xeons, fp32 elsewhere; evaluation stays fp32)",
        "options": {**_OMNIGLOT, "train_way": "20", "train_query": "5",
                    "train_episodes": "4000", "val_every": 1000, "val_episodes": 200,
                    "threads": 2},
    },
    "omniglot-cpu-protonet": {
        "about": "ProtoNet's Omniglot targets on 2 CPU cores in ~23 minutes: one Snell-style "
                 "60-way 1-shot 5-query model, 6000 episodes (bf16 where native), tested at "
                 "5/20-way 1/5-shot (the 5-shot cells reuse the 1-shot-trained model)",
        "options": {**_OMNIGLOT, "methods": "protonet", "train_way": "60", "train_shot": "1",
                    "train_query": "5", "train_episodes": "6000", "val_every": 1000,
                    "val_episodes": 200, "threads": 2},
    },
    "omniglot-trm-ablation": {
        "about": "TRM options on Omniglot 5-way 1-shot (CPU, ~1 h): each option paired against "
                 "the default trm (dual softmax, identity init) on the same 1000 test episodes: "
                 "row and Sinkhorn normalisation, random init, attn_dim 128 with either scale, "
                 "the 128-dim embedding layer with either scale, per-position cosine, fixed "
                 "τ = 10 and the patent's literal τ = 1 (the K-shot readings are identical at "
                 "1-shot: omniglot-trm-shots)",
        "options": {"dataset": "omniglot", "ways": "5", "shots": "1", "query": "15",
                    "methods": "trm,trm(normalize=row),trm(normalize=sinkhorn),trm(init=random),"
                               "trm(attn_dim=128),trm(attn_dim=128,scale=attn_dim),"
                               "trm(embed_dim=128),trm(embed_dim=128,scale=attn_dim),"
                               "trm(per_position=true),trm(temperature=fixed),"
                               "trm(temperature=fixed,tau=1.0)",
                    "train_episodes": "1000", "test_episodes": "1000", "val_every": 250,
                    "val_episodes": 200, "precision": "fp32"},  # its cells so far are fp32
    },
    "omniglot-trm-shots": {
        "about": "TRM's K-shot readings on Omniglot 5-way 5-shot (CPU, ~20 min): the K·HW "
                 "positions as keys (default), the mean support map, one alignment per shot, "
                 "and the row softmax, paired on the same 1000 test episodes",
        "options": {"dataset": "omniglot", "ways": "5", "shots": "5", "query": "15",
                    "methods": "trm,trm(shots=mean_map),trm(shots=per_shot),trm(normalize=row)",
                    "train_episodes": "1000", "test_episodes": "1000", "val_every": 250,
                    "val_episodes": 200, "precision": "fp32"},
    },
    "omniglot-zoo": {
        "about": "every episodic metric method on Omniglot (vinyals split, 28×28) at 5/20-way "
                 "1/5-shot, one training budget for all: 5-way 15-query training at the test "
                 "shot, 1000 episodes, Adam 1e-3, best of 2 validations on 100 episodes, 1000 "
                 "test episodes of 15 queries (the same for every method); baseline and "
                 "baselinepp: --preset omniglot-zoo-pretrained into the same --out",
        "options": {**_OMNIGLOT,
                    "methods": "trm,protonet,cosine,ctx,can,dn4,frn,matchingnet,relationnet,"
                               "feat",
                    "train_way": "5", "train_query": "15", "train_episodes": "1000",
                    "val_every": 500, "val_episodes": 100},
    },
    "omniglot-zoo-pretrained": {
        "about": "baseline and baselinepp for the omniglot-zoo table: 2 epochs of supervised "
                 "pre-training over the 4112 base classes (batch 16, Adam 1e-3; ~164k images, "
                 "near the episodic methods' 80k/100k), a classifier fitted per test episode, "
                 "the same 1000 test episodes",
        "options": {**_OMNIGLOT, "methods": "baseline,baselinepp", "pretrain_epochs": 2},
    },
    "cub-chen": {
        "about": "Chen et al. 2019's CUB Conv-4 meta-learning protocol (GPU-sized): closer-look "
                 "split, whole photos 84×84 with training augmentation, 5-way 16-query training, "
                 "60,000 episodes at 1-shot and 40,000 at 5-shot, Adam 1e-3 without decay, best "
                 "weights on validation (every 500 episodes, 200 episodes), 2,000 test episodes "
                 "of 15 queries (Chen: 600); their ProtoNet 51.31 / 70.77",
        "options": {**_CUB, "train_query": "16", "train_episodes": "1:60000,5:40000",
                    "lr": 1e-3, "lr_step": 0, "val_every": 500, "val_episodes": 200},
    },
    "cub-cpu": {
        "about": "protonet (logit temperature 64), cosine and trm on CUB (closer-look, 84×84) "
                 "at 5-way 1/5-shot, sized for about 2 hours of 2 CPU cores in all, with the "
                 "miniImageNet pilot's recipe: each backbone pre-trained as a 100-class "
                 "classifier (40 epochs of the 5,885 base photos, batch 64, Adam 1e-3, "
                 "augmentation on: 40 passes over a small set), then one 5-way 1-shot 15-query "
                 "episodic model per method, 3000 episodes, best of 3 validations on 200 "
                 "episodes, tested at 1- and 5-shot on 2,000 episodes of 15 queries (budget: "
                 "docs/reference-results.md, CUB-200-2011)",
        "options": {**_CUB, "methods": "protonet(temperature=64),cosine,trm",
                    "train_way": "5", "train_shot": "1", "train_query": "15",
                    "train_episodes": "3000", "lr_step": 2000, "lr_gamma": 0.5,
                    "val_every": 1000, "val_episodes": 200, "pretrain_epochs": 40,
                    "pretrain_batch": 64, "threads": 2},
    },
    "mini-snell": {
        "about": "Snell et al. 2017 miniImageNet protocol (GPU-sized): Ravi split, 84×84, no "
                 "augmentation, 30-way 1-shot and 20-way 5-shot training with 15 queries, Adam "
                 "1e-3 halved every 2000 episodes, 20,000 episodes, the best-validated model, "
                 "2000 test episodes of 5-way 15 queries. Published ProtoNet Conv-4: "
                 "49.42 ± 0.78 / 68.20 ± 0.66 (Snell, 600 episodes); LibFewShot Conv-64F "
                 "47.05 ± 0.35 / 68.56 ± 0.16; CAN 55.88 ± 0.38 / 70.98 ± 0.30",
        "options": {**_MINI, "dataset_options": ("augment=off",), "train_way": "1:30,5:20",
                    "train_query": "15", "train_episodes": "20000", "lr_step": 2000,
                    "lr_gamma": 0.5, "val_every": 1000, "val_episodes": 500},
    },
    "mini-cpu": {
        "about": "miniImageNet CPU reference set, about 2 h of 2 cores (bench run resumes it): "
                 "protonet with FEAT's logit temperature 64, cosine and trm, each backbone first "
                 "pre-trained as a 64-class classifier (8 epochs, batch 64, Adam 1e-3; shared by "
                 "cosine and trm, which both use Conv-64F), then one 5-way 1-shot 15-query "
                 "episodic model per method, 1500 episodes, no augmentation, best of 3 "
                 "validations, tested at 5-way 1- and 5-shot on 2000 episodes of 15 queries "
                 "(Ravi split, 84×84; bf16 where native). The pilot's choices: "
                 "results/reference/mini-imagenet-cpu/PILOT.md",
        "options": {**_MINI, "methods": "protonet(temperature=64),cosine,trm",
                    "dataset_options": ("augment=off",), "train_way": "5", "train_shot": "1",
                    "train_query": "15",
                    "train_episodes": "1500", "lr_step": 2000, "lr_gamma": 0.5,
                    "val_every": 500, "val_episodes": 200, "pretrain_epochs": 8,
                    "pretrain_batch": 64, "threads": 2},
    },
    "mini-fair": {
        "about": "the fair answer on miniImageNet (CPU): protonet (logit temperature 64), cosine "
                 "and trm, each trained at its test shot (5-way 1- and 5-shot, 15 queries), "
                 "after mini-cpu's 8-epoch pre-training, under one budget rule: validation "
                 "every 250 episodes on 200, training stops once the best validation accuracy "
                 "rose by ≤ 0.5 points over 1500 episodes at the last learning rate (Adam 1e-3 "
                 "halved at 2000: not before 3500), cap 4000; three training runs "
                 "(seeds 0, 1, 2) tested on one set of 2000 episodes (test seed 0)",
        "options": {**_MINI, **_FAIR, "dataset_options": ("augment=off",),
                    "train_episodes": "4000", "pretrain_epochs": 8},
    },
    "cub-fair": {
        "about": "the fair answer on CUB (CPU): cub-cpu's pre-training (40 epochs) and methods, "
                 "each trained at its test shot under mini-fair's budget rule (validation every "
                 "250 episodes on 200, stop once the best rose by ≤ 0.5 points over 1500 "
                 "episodes at the last learning rate: halved at 2000 and 4000, so not before "
                 "5500; cap 6000); seeds 0, 1, 2 on one set of 2000 test episodes",
        "options": {**_CUB, **_FAIR, "train_episodes": "6000", "pretrain_epochs": 40},
    },
    "ci-glyphs": {
        "about": "the accuracy-regression benchmark CI runs (benchmarks/regression.sh)",
        "options": {"dataset": "glyphs", "methods": "trm,protonet,cosine", "ways": "5",
                    "shots": "1,5", "train_episodes": "200", "test_episodes": "300",
                    "val_every": 100, "seeds": "0", "threads": 2,
                    "precision": "fp32"},  # the baseline is fp32: same numbers on any CPU
    },
}


def apply_preset(name: str | None, options: dict, explicit: set[str]) -> dict:
    """``options`` with the preset's values for every option the user did not give."""
    if not name:
        return options
    if name not in PRESETS:
        raise BenchError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    merged = dict(options)
    for key, value in PRESETS[name]["options"].items():
        if key == "dataset_options" and key in explicit:
            merged[key] = merged_dataset_options(value, options[key])
        elif key not in explicit:
            merged[key] = value
    return merged


def merged_dataset_options(preset: tuple[str, ...], given: tuple[str, ...]) -> tuple[str, ...]:
    """The preset's -D KEY=VALUE options with the user's added, the user's value winning for a
    key both set: `--preset mini-cpu -D source=csv` keeps the preset's augment=off."""
    keys = {item.split("=", 1)[0].strip() for item in given}
    return tuple(item for item in preset if item.split("=", 1)[0].strip() not in keys) + \
        tuple(given)
