# optformer: common tasks. Each target creates .venv on first use and
# reinstalls the package (editable) only when pyproject.toml changes.
#
#   make test     run the test suite (pytest)
#   make demo     OptFormer vs random search on a real HPO task -> results/demo/
#   make bench    reduced benchmarks (prior, BBOB, HPO suites; every optimizer), ask() latency, surrogate quality, report -> results/bench/
#   make corpus   generate the synthetic training corpus -> corpus/
#   make train    train on corpus/ in runs/gp-v1 (resumable), export checkpoints/optformer-gp-v1
#   make train-v2 train model v2 on prior examples generated on the fly in runs/v2 (resumable; on a new
#                 machine it warm-starts from checkpoints/optformer-v2), exporting there every 1000 steps
#
# Knobs: PYTHON (interpreter that creates the venv), DEMO_ARGS, CORPUS_DIR, CORPUS_ARGS,
# WORKDIR, CHECKPOINT, TRAIN_ARGS (e.g. make train TRAIN_ARGS='--until 2000').

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORPUS_DIR ?= corpus
WORKDIR ?= runs/gp-v1
CHECKPOINT ?= checkpoints/optformer-gp-v1
# The corpus lands in $(CORPUS_DIR)/optformer_corpus/<config name>/<version>; training needs exactly one there.
CORPUS_ARGS ?= --num-train 24000 --num-valid 512 --trials 64 --max-dims 8 --seed 0 --mix 0.6,0.2,0.2 --cpus 1

WORKDIR_V2 ?= runs/v2
CHECKPOINT_V2 ?= checkpoints/optformer-v2
TRAIN_V2_ARGS ?= --export-every 1000 --no-progress

.PHONY: test demo bench corpus train train-v2 clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Install stamps: one per extra ("base" = no extra), rebuilt when pyproject.toml changes.
$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e .
	touch $@

$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e ".[$*]"
	touch $@

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

demo: $(VENV)/.installed-demo
	$(BIN)/python -m eval.demo $(DEMO_ARGS)

bench: $(VENV)/.installed-eval
	$(BIN)/python -m eval.benchmark --preset bench --out results/bench
	$(BIN)/python -m eval.latency --out results/bench/latency.json
	$(BIN)/python -m eval.surrogate_eval --tasks 16 --out results/bench/surrogate.json --figure results/bench/figures/surrogate_calibration.png
	$(BIN)/python -m eval.report results/bench

corpus: $(VENV)/.installed-base
	$(BIN)/python -m data_gen.cli --out $(CORPUS_DIR) $(CORPUS_ARGS)

train: $(VENV)/.installed-base
	$(BIN)/python -m training.cli --corpus $(CORPUS_DIR) --workdir $(WORKDIR) --export $(CHECKPOINT) $(TRAIN_ARGS)

train-v2: $(VENV)/.installed-base
	$(BIN)/python -m training.pfn_cli --workdir $(WORKDIR_V2) \
	  $(if $(wildcard $(WORKDIR_V2)/config.json),,$(if $(wildcard $(CHECKPOINT_V2)/config.json),--init-from $(CHECKPOINT_V2))) \
	  --export $(CHECKPOINT_V2) $(TRAIN_V2_ARGS)

clean-venv:
	rm -rf $(VENV)
