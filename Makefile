# optformer: common tasks. Each target creates .venv on first use and
# reinstalls the package (editable) only when pyproject.toml changes.
#
#   make test     run the test suite (pytest), without the tests marked slow
#   make test-slow    run only the tests marked slow (CI runs both)
#   make demo     OptFormer vs random search on a real HPO task -> results/demo/
#   make bench    reduced benchmarks (prior, BBOB, HPO suites; every optimizer), ask() latency, surrogate quality, report -> results/bench/
#   make corpus   generate the stored trajectory corpus (TFDS) -> corpus/
#   make train    train the default model in $(WORKDIR) (resumable) on prior examples generated on the fly,
#                 export it to $(CHECKPOINT); TRAIN_ARGS='--preset tiny --steps 50' for a smoke run,
#                 TRAIN_ARGS='--preset gpu' on one GPU (docs/scale.md: the pod slice's multi-process command)
#   make smoke-distributed   two local CPU processes (jax.distributed on 127.0.0.1) train the tiny config, one is
#                 killed and both resume; prints its final loss and the one-process run's (docs/scale.md)
#   make train-v2 the default model's long run in runs/v2e (resumable; on a new machine it resumes from
#                 snapshots/v2), exporting to runs/v2e/export every 1000 steps
#   make snapshot-v2  copy the v2 run's latest full state to snapshots/v2 (commit it to resume elsewhere)
#   make train-v3 / snapshot-v3   the same for model v3's run (runs/v3c: contexts up to 256, the prior's families)
#   make wheel-test   build the wheel, install it in a fresh venv outside the checkout, run it
#
# Training is one entry point, `optformer-train SUBCOMMAND` (= python -m optformer.training): train, export,
# eval, throughput, probe, ablation-table, ablate, gp-reference; `optformer-train SUBCOMMAND --help` for its flags.
#
# Knobs: PYTHON (interpreter that creates the venv), DEMO_ARGS, CORPUS_DIR, CORPUS_ARGS, SMOKE_ARGS,
# WORKDIR, CHECKPOINT, TRAIN_ARGS (e.g. make train TRAIN_ARGS='--until 2000' or '--config run.json').

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORPUS_DIR ?= corpus
WORKDIR ?= runs/train
CHECKPOINT ?= $(WORKDIR)/export
TRAIN_ARGS ?=
# The corpus lands in $(CORPUS_DIR)/optformer_corpus/<config name>/<version>.
CORPUS_ARGS ?= --num-train 24000 --num-valid 512 --trials 64 --max-dims 8 --seed 0 --mix 0.6,0.2,0.2 --cpus 1

WORKDIR_V2 ?= runs/v2e
CHECKPOINT_V2 ?= checkpoints/optformer-v2
# The run's latest full training state (optimizer state and data position included), committed at
# session ends so a new machine resumes the run exactly rather than warm-starting.
SNAPSHOT_V2 ?= snapshots/v2
# A fresh run of the model with distance-biased attention (docs/model_v2.md, "Distance-biased attention").
TRAIN_V2_ARGS ?= --export-every 1000 --no-progress
# Its exports; copy one to $(CHECKPOINT_V2) (and commit it) when it beats the committed model.
EXPORT_V2 ?= $(WORKDIR_V2)/export
# An exported model directory to warm-start a new run from (default: none, a fresh model).
V2_INIT ?=

# Model v3's run: contexts up to the model's 256 trials (examples of 64, 128 and 256 points) and the prior's
# families (a noise mixture, BBOB-like and HPO-like objectives: docs/ablations/noise_mixture.md,
# docs/prior_families.md); resumable like v2's, from snapshots/v3 on a new machine.
WORKDIR_V3 ?= runs/v3c
# The warm start of a new v3 run: snapshots/v3-init, the export of runs/v3b at step 36550 (v2's surrogate run,
# step 35000, then 1550 steps on contexts up to 256 with v2's prior).
V3_INIT ?= snapshots/v3-init
SNAPSHOT_V3 ?= snapshots/v3
TRAIN_V3_ARGS ?= --seq-lens 64,128,256 --prior-noiseless 0.3 --prior-bbob 0.15 --prior-hpo 0.15 --eval-prior reference --steps 200000 --learning-rate 3e-4 --warmup 200 --eval-every 1000 --export-every 1000 --no-progress

.PHONY: test test-slow wheel-test demo bench corpus train smoke-distributed train-v2 snapshot-v2 train-v3 snapshot-v3 clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Install stamps: one per extra ("base" = no extra), rebuilt when pyproject.toml changes.
$(VENV)/.installed-base: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -c constraints.txt -e .
	touch $@

$(VENV)/.installed-%: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -c constraints.txt -e ".[$*]"
	touch $@

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

# The tests marked slow (over ~20 s each here); CI runs them after make test.
test-slow: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m slow

# The built wheel in a fresh environment outside the checkout (what CI runs after the tests).
wheel-test:
	bash .ci/wheel_smoke $(PYTHON)

demo: $(VENV)/.installed-demo
	$(BIN)/python -m optformer.eval.demo $(DEMO_ARGS)

bench: $(VENV)/.installed-eval
	$(BIN)/python -m optformer.eval.benchmark --preset bench --out results/bench
	$(BIN)/python -m optformer.eval.latency --out results/bench/latency.json
	$(BIN)/python -m optformer.eval.surrogate_eval --tasks 16 --out results/bench/surrogate.json --figure results/bench/figures/surrogate_calibration.png
	$(BIN)/python -m optformer.eval.report results/bench

corpus: $(VENV)/.installed-data
	$(BIN)/python -m optformer.data_gen.cli --out $(CORPUS_DIR) $(CORPUS_ARGS)

train: $(VENV)/.installed-train
	$(BIN)/python -m optformer.training train --workdir $(WORKDIR) --export $(CHECKPOINT) $(TRAIN_ARGS)

# One process vs two (same global batch), a kill of process 1 and a resume; exit status 1 when the loss curves differ.
smoke-distributed: $(VENV)/.installed-train
	$(BIN)/python -m optformer.training.smoke_distributed $(SMOKE_ARGS)

train-v2: $(VENV)/.installed-train
	@if [ ! -f $(WORKDIR_V2)/config.json ] && [ -f $(SNAPSHOT_V2)/config.json ]; then \
	  echo "resuming from the snapshot $(SNAPSHOT_V2)"; mkdir -p $(WORKDIR_V2) && cp -r $(SNAPSHOT_V2)/. $(WORKDIR_V2)/; fi
	@init=""; [ -f $(WORKDIR_V2)/config.json ] || [ -z "$(V2_INIT)" ] || init="--init-from $(V2_INIT)"; \
	  set -x; $(BIN)/python -m optformer.training train --workdir $(WORKDIR_V2) $$init \
	  --export $(EXPORT_V2) $(TRAIN_V2_ARGS)

# Copies the v2 run's config, metrics and latest checkpoint to $(SNAPSHOT_V2) (about 11 MB).
snapshot-v2:
	@latest=$$(ls $(WORKDIR_V2)/checkpoints | grep -E '^[0-9]+$$' | sort -n | tail -1); \
	  test -n "$$latest" || { echo "no checkpoint in $(WORKDIR_V2)/checkpoints" >&2; exit 2; }; \
	  rm -rf $(SNAPSHOT_V2) && mkdir -p $(SNAPSHOT_V2)/checkpoints && \
	  cp $(WORKDIR_V2)/config.json $(WORKDIR_V2)/metrics.jsonl $(SNAPSHOT_V2)/ && \
	  cp -r $(WORKDIR_V2)/checkpoints/$$latest $(SNAPSHOT_V2)/checkpoints/ && echo "snapshot of step $$latest in $(SNAPSHOT_V2)"

train-v3: $(VENV)/.installed-train
	@if [ ! -f $(WORKDIR_V3)/config.json ] && [ -f $(SNAPSHOT_V3)/config.json ]; then \
	  echo "resuming from the snapshot $(SNAPSHOT_V3)"; mkdir -p $(WORKDIR_V3) && cp -r $(SNAPSHOT_V3)/. $(WORKDIR_V3)/; fi
	@init=""; [ -f $(WORKDIR_V3)/config.json ] || init="--init-from $(V3_INIT)"; \
	  set -x; $(BIN)/python -m optformer.training train --workdir $(WORKDIR_V3) $$init \
	  --export $(WORKDIR_V3)/export $(TRAIN_V3_ARGS)

snapshot-v3:
	$(MAKE) snapshot-v2 WORKDIR_V2=$(WORKDIR_V3) SNAPSHOT_V2=$(SNAPSHOT_V3)

clean-venv:
	rm -rf $(VENV)
