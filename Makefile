# fewshot-bench: the two commands of the README, plus the CI regression benchmark.
VENV  := .venv
BENCH := $(VENV)/bin/bench

.PHONY: setup demo test regression

setup:
	@bash scripts/setup.sh

# Set up if needed, then the main job: TRM, ProtoNet and cosine at 5-way 1- and 5-shot on the
# embedded `glyphs` dataset (offline), table printed, rows in runs/demo/results.csv.
demo: setup
	$(BENCH) run --methods trm,protonet,cosine --shots 1,5 --out runs/demo
	$(BENCH) report runs/demo --compare trm

# Set up if needed, then the whole test suite.
test: setup
	$(VENV)/bin/pytest

# The accuracy-regression benchmark CI runs after the tests (checked against a committed baseline).
regression: setup
	bash benchmarks/regression.sh
