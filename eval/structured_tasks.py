"""Structured HPO tasks: a conditional, a constrained and a bi-objective study on scikit-learn's digits.

Each task is a define-by-run Optuna objective (`StructuredTask.objective(trial)`), so every sampler, ours and
the baselines, runs it through the same `study.optimize` loop (eval/structured_hpo.py):

| task          | model                                      | objective(s), all minimized                  |
| ------------- | ------------------------------------------ | -------------------------------------------- |
| "conditional" | model choice: SVC (kernel-dependent gamma, | validation error                             |
|               | degree), random forest, logistic regression|                                              |
| "constrained" | random forest                              | validation error, subject to at most         |
|               |                                            | `NODE_BUDGET` tree nodes in the forest       |
| "biobjective" | MLP with two hidden layers                 | (validation error, log10 number of weights)  |

Data: scikit-learn's bundled digits (1797 8x8 images, 10 classes; no download), pixel values divided by 16
(their range, so features lie in [0, 1]), one fixed stratified split: 2/3 train (1198), 1/3 validation (599),
shuffled with seed 0. Validation error = 1 - accuracy on the validation third, a multiple of 1/599.

Every evaluation is deterministic (fixed split, `random_state=0` in every estimator, one thread through
threadpoolctl) and memoized per process, and takes 0.01-0.7 s on one core. Warnings inside a fit (convergence)
are suppressed: they are part of the landscape. A fit that raises returns NaN (Optuna records a FAIL trial).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from typing import Any, Callable, Sequence

import numpy as np

NODE_BUDGET = 2000  # The constrained task's limit on the forest's total tree nodes (internal and leaves).
MAX_LOG10_WEIGHTS = 4.5  # Above the bi-objective space's largest MLP: log10(26122) = 4.42.
REFERENCE = (1.0, MAX_LOG10_WEIGHTS)  # The bi-objective hypervolume's reference point (error, log10 weights).
NUM_FEATURES, NUM_CLASSES = 64, 10


@functools.lru_cache(maxsize=1)
def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """(x_train float64 [1198, 64] in [0, 1], x_valid [599, 64], y_train int [1198], y_valid [599])."""
  from sklearn.datasets import load_digits
  from sklearn.model_selection import train_test_split

  x, y = load_digits(return_X_y=True)
  x_tr, x_va, y_tr, y_va = train_test_split(x / 16.0, y, test_size=1 / 3, stratify=y, random_state=0)
  return x_tr, x_va, y_tr, y_va


def _fit(estimator) -> tuple[float, Any]:
  """(validation error in [0, 1], fitted estimator) of `estimator` fitted on the training two thirds; error NaN and
  estimator None if the fit raises."""
  from threadpoolctl import threadpool_limits

  x_tr, x_va, y_tr, y_va = digits_split()
  with threadpool_limits(1), warnings.catch_warnings(), np.errstate(all="ignore"):
    warnings.simplefilter("ignore")
    try:
      estimator.fit(x_tr, y_tr)
      return 1.0 - float(estimator.score(x_va, y_va)), estimator
    except Exception:  # A failed fit is a failed trial, whatever the cause.
      return math.nan, None


# -- Estimators, memoized on their parameters (hashable, sorted items) ------------------------------------------


@functools.lru_cache(maxsize=None)
def conditional_error(items: tuple) -> float:
  """Validation error of the model-choice configuration `tuple(sorted(params.items()))`."""
  from sklearn.ensemble import RandomForestClassifier
  from sklearn.linear_model import LogisticRegression
  from sklearn.svm import SVC

  p = dict(items)
  if p["classifier"] == "svc":
    kernel = p["svc_kernel"]
    estimator = SVC(C=p["svc_C"], kernel=kernel, gamma=p.get("svc_gamma", "scale"), degree=p.get("svc_degree", 3))
  elif p["classifier"] == "random_forest":
    estimator = RandomForestClassifier(
        n_estimators=p["rf_n_estimators"], max_depth=p["rf_max_depth"], min_samples_leaf=p["rf_min_samples_leaf"],
        max_features=p["rf_max_features"], random_state=0, n_jobs=1)
  else:
    estimator = LogisticRegression(C=p["lr_C"], max_iter=200, random_state=0)
  return _fit(estimator)[0]


@functools.lru_cache(maxsize=None)
def forest_error_and_nodes(items: tuple) -> tuple[float, int]:
  """(validation error, total tree nodes of the fitted forest) of a random-forest configuration; nodes -1 if the
  fit raises."""
  from sklearn.ensemble import RandomForestClassifier

  p = dict(items)
  error, forest = _fit(RandomForestClassifier(
      n_estimators=p["n_estimators"], max_depth=p["max_depth"], min_samples_leaf=p["min_samples_leaf"],
      max_features=p["max_features"], criterion=p["criterion"], random_state=0, n_jobs=1))
  return error, (sum(t.tree_.node_count for t in forest.estimators_) if forest is not None else -1)


def mlp_weights(hidden_1: int, hidden_2: int) -> int:
  """Weights and biases of a 64 -> hidden_1 -> hidden_2 -> 10 MLP."""
  return (NUM_FEATURES + 1) * hidden_1 + (hidden_1 + 1) * hidden_2 + (hidden_2 + 1) * NUM_CLASSES


@functools.lru_cache(maxsize=None)
def mlp_error(items: tuple) -> float:
  """Validation error of an MLP configuration (adam, 30 epochs of batches of 64, no early stopping)."""
  from sklearn.neural_network import MLPClassifier

  p = dict(items)
  return _fit(MLPClassifier(
      hidden_layer_sizes=(p["hidden_1"], p["hidden_2"]), alpha=p["alpha"], learning_rate_init=p["learning_rate_init"],
      batch_size=64, max_iter=30, random_state=0))[0]


# -- Define-by-run objectives ----------------------------------------------------------------------------------


def _key(trial) -> tuple:
  return tuple(sorted(trial.params.items()))


def conditional_objective(trial) -> float:
  """Model choice over three classifiers, 10 parameters in all, 2-5 active per trial:

  classifier in {svc, random_forest, logistic_regression};
  svc: svc_C log [1e-3, 1e3], svc_kernel in {rbf, poly, linear}, svc_gamma log [1e-4, 10] (rbf and poly),
    svc_degree int [2, 5] (poly);
  random_forest: rf_n_estimators int log [5, 50], rf_max_depth int log [2, 32], rf_min_samples_leaf int log [1, 16],
    rf_max_features log [0.05, 0.5];
  logistic_regression: lr_C log [1e-4, 1e3].
  """
  classifier = trial.suggest_categorical("classifier", ["svc", "random_forest", "logistic_regression"])
  if classifier == "svc":
    trial.suggest_float("svc_C", 1e-3, 1e3, log=True)
    kernel = trial.suggest_categorical("svc_kernel", ["rbf", "poly", "linear"])
    if kernel in ("rbf", "poly"):
      trial.suggest_float("svc_gamma", 1e-4, 10.0, log=True)
    if kernel == "poly":
      trial.suggest_int("svc_degree", 2, 5)
  elif classifier == "random_forest":
    trial.suggest_int("rf_n_estimators", 5, 50, log=True)
    trial.suggest_int("rf_max_depth", 2, 32, log=True)
    trial.suggest_int("rf_min_samples_leaf", 1, 16, log=True)
    trial.suggest_float("rf_max_features", 0.05, 0.5, log=True)
  else:
    trial.suggest_float("lr_C", 1e-4, 1e3, log=True)
  return conditional_error(_key(trial))


def constrained_objective(trial) -> float:
  """Random forest, validation error, with the constraint nodes / NODE_BUDGET - 1 (<= 0 feasible) stored as the
  trial's user attribute "constraint" (read by `constraint_of`):

  n_estimators int log [1, 64], max_depth int log [1, 32], min_samples_leaf int log [1, 32],
  max_features log [0.02, 0.5], criterion in {gini, entropy}.
  """
  trial.suggest_int("n_estimators", 1, 64, log=True)
  trial.suggest_int("max_depth", 1, 32, log=True)
  trial.suggest_int("min_samples_leaf", 1, 32, log=True)
  trial.suggest_float("max_features", 0.02, 0.5, log=True)
  trial.suggest_categorical("criterion", ["gini", "entropy"])
  error, nodes = forest_error_and_nodes(_key(trial))
  trial.set_user_attr("nodes", nodes)
  trial.set_user_attr("constraint", nodes / NODE_BUDGET - 1.0 if nodes >= 0 else math.inf)
  return error


def constraint_of(trial) -> list[float]:
  """The constrained task's `constraints_func`: [nodes / NODE_BUDGET - 1] of a finished trial (feasible if <= 0)."""
  return [float(trial.user_attrs["constraint"])]


def biobjective_objective(trial) -> tuple[float, float]:
  """MLP 64 -> hidden_1 -> hidden_2 -> 10: (validation error, log10 weights and biases), both minimized:

  hidden_1 int log [2, 128], hidden_2 int log [2, 128], alpha (L2) log [1e-6, 1e-1],
  learning_rate_init log [1e-4, 1e-1].
  """
  h1 = trial.suggest_int("hidden_1", 2, 128, log=True)
  h2 = trial.suggest_int("hidden_2", 2, 128, log=True)
  trial.suggest_float("alpha", 1e-6, 1e-1, log=True)
  trial.suggest_float("learning_rate_init", 1e-4, 1e-1, log=True)
  return mlp_error(_key(trial)), math.log10(mlp_weights(h1, h2))


@dataclasses.dataclass(frozen=True)
class StructuredTask:
  """A define-by-run Optuna objective with its study's directions.

  Args:
    name: "conditional", "constrained" or "biobjective".
    objective: optuna.Trial -> float (one direction) or a tuple of floats (one per direction).
    directions: Optuna directions, e.g. ("minimize",) or ("minimize", "minimize").
    constraints_func: None, or FrozenTrial -> [floats], feasible when all <= 0 (Optuna's convention).
    reference: the hypervolume reference point of a multi-objective task (one float per direction), else None.
  """

  name: str
  objective: Callable[[Any], float | tuple]
  directions: tuple[str, ...] = ("minimize",)
  constraints_func: Callable[[Any], Sequence[float]] | None = None
  reference: tuple[float, ...] | None = None

  def describe(self) -> dict:
    """JSON-able description (for result files)."""
    return {"name": self.name, "directions": list(self.directions), "constrained": self.constraints_func is not None,
            "reference": None if self.reference is None else list(self.reference),
            "objective": (self.objective.__doc__ or "").split("\n\n")[0].strip()}


TASKS = {
    "conditional": StructuredTask("conditional", conditional_objective),
    "constrained": StructuredTask("constrained", constrained_objective, constraints_func=constraint_of),
    "biobjective": StructuredTask("biobjective", biobjective_objective, ("minimize", "minimize"),
                                  reference=REFERENCE),
}
