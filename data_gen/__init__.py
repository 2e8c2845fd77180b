"""Synthetic optimization trajectories: a GP prior, behaviour algorithms, a corpus.

Public API (re-exports):
  prior:     PriorConfig, TaskBatch, sample_tasks, task_seeds, evaluate, latent, canonicalize
  task:      SyntheticTask
  families:  BBOB-like and HPO-like objectives beside the GP draws (PriorConfig.p_bbob, p_hpo; import the module)
  gp:        posterior (exact GP with the true hyperparameters)
  behaviour: ALGORITHMS, BehaviourConfig, GenerationStats, generate, generate_from_seeds
  corpus:    CorpusConfig, OptformerCorpus, build_corpus, load_corpus, load_corpus_config,
             find_corpus_dirs, resolve_corpus_dir
"""

from optformer.data_gen.behaviour import ALGORITHMS, BehaviourConfig, GenerationStats, generate, generate_from_seeds
from optformer.data_gen.gp import posterior
from optformer.data_gen.prior import (KIND_CATEGORICAL, KIND_FLOAT, KIND_ORDINAL, KIND_UNUSED, PriorConfig, TaskBatch,
                            canonicalize, evaluate, latent, sample_tasks, task_seeds)
from optformer.data_gen.task import SyntheticTask


def __getattr__(name):
  # The corpus module imports tensorflow_datasets (slow); load it on first use.
  if name in ("CorpusConfig", "OptformerCorpus", "build_corpus", "load_corpus", "load_corpus_config",
              "find_corpus_dirs", "resolve_corpus_dir"):
    from optformer.data_gen import corpus
    return getattr(corpus, name)
  raise AttributeError(f"module 'data_gen' has no attribute {name!r}")
