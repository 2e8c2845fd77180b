"""Real hyperparameter-optimization tasks: scikit-learn models on its bundled data sets.

A *task* is a black-box objective over a search space (the `Task` protocol):
`.name`, `.space` (optformer.SearchSpace), `.goal` ("minimize" or
"maximize") and `task(params) -> float`. Tasks here are Bayesmark-style
(Turner et al., "Bayesian Optimization is Superior to Random Search for
Machine Learning Hyperparameter Tuning", NeurIPS 2020 competition): one
estimator, one small data set shipped inside scikit-learn (no download), the
objective a K-fold cross-validated loss.

Every evaluation is deterministic: the CV splits are fixed (shuffled with
`seed`), the estimator's `random_state` is fixed, and the estimator runs on
one thread (threadpoolctl), which is also the fastest way to run these small
fits on a busy 2-core machine (HGB with OpenMP on 2 contended cores is
~20x slower). A fit that fails returns NaN, which optimizers record as an
infeasible trial.

To add a task: write a `_make_<model>(params) -> estimator` and register a
factory in `TASKS` (see `hgb_breast_cancer`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from typing import Any, Callable, Mapping, Protocol

import numpy as np

import optformer

DEMO_TASK = "hgb_breast_cancer"


class Task(Protocol):
  """A black-box objective: `task(params) -> float`, to optimize with `goal`."""

  name: str
  space: optformer.SearchSpace
  goal: str

  def __call__(self, params: Mapping[str, Any]) -> float: ...


# -- Data sets and metrics -----------------------------------------------------

# name -> (scikit-learn loader, is_classification). All ship with scikit-learn.
_DATASETS = {
    "breast_cancer": ("load_breast_cancer", True),  # 569 x 30, 2 classes.
    "digits": ("load_digits", True),  # 1797 x 64, 10 classes.
    "iris": ("load_iris", True),  # 150 x 4, 3 classes.
    "wine": ("load_wine", True),  # 178 x 13, 3 classes.
    "diabetes": ("load_diabetes", False),  # 442 x 10, regression target.
}

# name -> (scikit-learn scorer, sign): objective = sign * mean CV score, minimized.
_METRICS = {
    "log_loss": ("neg_log_loss", -1.0),  # Cross-entropy of predicted probabilities, nats.
    "error": ("accuracy", None),  # 1 - accuracy (misclassification rate).
    "mse": ("neg_mean_squared_error", -1.0),  # Mean squared error, target units squared.
    "mae": ("neg_mean_absolute_error", -1.0),  # Mean absolute error, target units.
}


@functools.lru_cache(maxsize=None)
def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
  """(X float [N, F], y [N]) of a scikit-learn bundled data set. Raises KeyError if unknown."""
  import sklearn.datasets

  loader, _ = _DATASETS[name]
  x, y = getattr(sklearn.datasets, loader)(return_X_y=True)
  return np.asarray(x, np.float64), np.asarray(y)


@dataclasses.dataclass(frozen=True)
class SklearnTask:
  """K-fold cross-validated loss of a scikit-learn estimator; minimized.

  Args:
    name: task id, e.g. "hgb_breast_cancer".
    space: the hyperparameters tuned.
    make_estimator: params -> an unfitted estimator (fixed random_state).
    dataset: key of `_DATASETS`.
    metric: key of `_METRICS`; the objective is the mean over folds.
    folds: K of the (stratified, for classification) K-fold split.
    seed: shuffles the split once; the same for every evaluation.
  """

  name: str
  space: optformer.SearchSpace
  make_estimator: Callable[[Mapping[str, Any]], Any]
  dataset: str
  metric: str
  folds: int = 3
  seed: int = 0
  goal: str = "minimize"

  def __call__(self, params: Mapping[str, Any]) -> float:
    """The mean CV loss (units of `metric`) at `params`; NaN if the fit fails."""
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from threadpoolctl import threadpool_limits

    params = self.space.validate(params)
    x, y = load_dataset(self.dataset)
    split = StratifiedKFold if _DATASETS[self.dataset][1] else KFold
    cv = split(n_splits=self.folds, shuffle=True, random_state=self.seed)
    scorer, sign = _METRICS[self.metric]
    with threadpool_limits(1), warnings.catch_warnings():
      warnings.simplefilter("ignore")  # Convergence warnings are part of the landscape.
      scores = cross_val_score(self.make_estimator(params), x, y, cv=cv, scoring=scorer, error_score=np.nan)
    score = float(np.mean(scores))
    value = 1.0 - score if sign is None else sign * score
    return value if math.isfinite(value) else math.nan

  def describe(self) -> dict:
    """JSON-able description (for result files)."""
    return {
        "name": self.name, "dataset": self.dataset, "metric": self.metric, "folds": self.folds,
        "seed": self.seed, "goal": self.goal, "space": self.space.to_json(),
    }


# -- Tasks ---------------------------------------------------------------------


def _make_hgb(params):
  from sklearn.ensemble import HistGradientBoostingClassifier

  return HistGradientBoostingClassifier(
      learning_rate=params["learning_rate"], max_iter=params["max_iter"],
      max_leaf_nodes=params["max_leaf_nodes"], min_samples_leaf=params["min_samples_leaf"],
      l2_regularization=params["l2_regularization"], max_features=params["max_features"],
      max_bins=params["max_bins"],
      interaction_cst=None if params["interaction_cst"] == "none" else params["interaction_cst"],
      early_stopping=False, random_state=0,
  )


def hgb_breast_cancer() -> SklearnTask:
  """The demo task: HistGradientBoostingClassifier on breast_cancer, 3-fold CV log-loss.

  8 parameters (all four kinds). One evaluation takes ~0.04 s + ~2 ms per
  boosting iteration on one core, so max_iter is capped at 50: over random
  configurations the median is ~0.08 s, the mean ~0.1 s (2-core machine
  shared with a training job). Log-loss rather than error: on
  569 samples the error is a step function of the parameters (steps of
  1/569), the log-loss is smooth but non-trivial (a too-high learning rate
  overfits, a too-low one underfits, the two interact with max_iter).
  """
  f, i, d, c = optformer.Float, optformer.Int, optformer.Discrete, optformer.Categorical
  space = optformer.SearchSpace([
      f("learning_rate", 1e-3, 1.0, log=True),
      i("max_iter", 10, 50, log=True),
      i("max_leaf_nodes", 2, 64, log=True),
      i("min_samples_leaf", 1, 64, log=True),
      f("l2_regularization", 1e-6, 10.0, log=True),
      f("max_features", 0.1, 1.0),
      d("max_bins", [15, 31, 63, 127, 255]),
      c("interaction_cst", ["none", "pairwise", "no_interactions"]),
  ])
  return SklearnTask(DEMO_TASK, space, _make_hgb, "breast_cancer", "log_loss")


TASKS: dict[str, Callable[[], Task]] = {
    DEMO_TASK: hgb_breast_cancer,
}


def get_task(name: str) -> Task:
  """The task registered as `name`. Raises ValueError if unknown."""
  if name not in TASKS:
    raise ValueError(f"Unknown task {name!r}; known: {sorted(TASKS)}.")
  return TASKS[name]()
