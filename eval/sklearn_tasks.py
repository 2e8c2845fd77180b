"""Real hyperparameter-optimization tasks: scikit-learn models on its bundled data sets.

A *task* is a black-box objective over a search space (the `Task` protocol):
`.name`, `.space` (optformer.SearchSpace, at most 8 parameters), `.goal`
("minimize" or "maximize") and `task(params) -> float`. Tasks here are
Bayesmark-style (Turner et al., "Bayesian Optimization is Superior to Random
Search for Machine Learning Hyperparameter Tuning", NeurIPS 2020 competition;
the `bayesmark` package, `sklearn_funcs.py`): one estimator, one small data set
shipped inside scikit-learn (no download), the objective a K-fold
cross-validated loss, always minimized.

Search spaces follow Bayesmark's (parameter names, ranges, linear or log
scale), with these differences, each noted at the task:
  * Bayesmark's "logit" scale (for fractions such as max_features) becomes a
    linear Float here (SearchSpace has linear and log scales only), except
    for ranges inside (0, 0.5), where a log scale is closer to the logit's;
  * Bayesmark's MLP-adam tunes 9 parameters; `epsilon` is fixed at its
    default 1e-8 to fit the model's 8 parameter slots;
  * Bayesmark has almost no categorical parameters; a few natural ones are
    added (kNN `weights`, tree `criterion`, logistic `penalty`) and marked so;
  * Bayesmark fits on a fixed 80 % of the data and holds out 20 % for a
    generalization score; here the whole data set is cross-validated (one
    objective), raw features as in Bayesmark (no scaling);
  * Bayesmark's accuracy loss is -accuracy; here it is 1 - accuracy.
Gradient boosting (`hgb_breast_cancer`, `gb_diabetes`) has no Bayesmark
space; its spaces are ours.

Metrics (`_METRICS`), all losses: "log_loss" (cross-entropy of the predicted
class probabilities, nats), "error" (1 - accuracy), "mse" (mean squared
error, target units squared), "mae" (mean absolute error, target units).

Every evaluation is deterministic: the CV splits are fixed (shuffled with
`seed`), every estimator's `random_state` is fixed, and the estimator runs on
one thread (threadpoolctl), which is also the fastest way to run these small
fits on a busy 2-core machine (HGB with OpenMP on 2 contended cores is
~20x slower). Warnings (convergence and the like) are suppressed inside an
evaluation: they are part of the landscape. A fit that fails, or a loss that
is not finite, returns NaN, which optimizers record as an infeasible trial;
params outside the space raise ValueError (`SearchSpace.validate`).

Registry: `TASKS` maps a name to a zero-argument factory; `get_task(name)`.
Mean seconds per evaluation (one core): `python -m optformer.eval.sklearn_tasks`.

To add a task: write a `_<model>(params) -> estimator` and register a
factory in `TASKS`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
import time
import warnings
from typing import Any, Callable, Mapping, Protocol

import numpy as np

import optformer
from optformer import Categorical, Discrete, Float, Int, SearchSpace

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
    "diabetes": ("load_diabetes", False),  # 442 x 10, regression target in 25..346.
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
  """(X float64 [N, F], y [N]) of a scikit-learn bundled data set. Raises KeyError if unknown."""
  import sklearn.datasets

  loader, _ = _DATASETS[name]
  x, y = getattr(sklearn.datasets, loader)(return_X_y=True)
  return np.asarray(x, np.float64), np.asarray(y)


@dataclasses.dataclass(frozen=True)
class SklearnTask:
  """K-fold cross-validated loss of a scikit-learn estimator; minimized.

  Args:
    name: task id, e.g. "hgb_breast_cancer".
    space: the hyperparameters tuned (at most 8).
    make_estimator: params -> an unfitted estimator (fixed random_state).
    dataset: key of `_DATASETS`.
    metric: key of `_METRICS`; the objective is the mean over folds.
    folds: K of the (stratified, for classification) K-fold split.
    seed: shuffles the split once; the same for every evaluation.
    model: a short human-readable model name, e.g. "SVC (RBF)".
  """

  name: str
  space: optformer.SearchSpace
  make_estimator: Callable[[Mapping[str, Any]], Any]
  dataset: str
  metric: str
  folds: int = 3
  seed: int = 0
  goal: str = "minimize"
  model: str = ""

  def __call__(self, params: Mapping[str, Any]) -> float:
    """The mean CV loss (units of `metric`) at `params`.

    Returns NaN if any fold's fit or scoring raises (for any exception) or the
    loss is not finite: optimizers record that as an infeasible trial.

    Raises:
      ValueError / TypeError: params not in the search space.
    """
    from sklearn.base import clone
    from sklearn.metrics import get_scorer
    from sklearn.model_selection import KFold, StratifiedKFold
    from threadpoolctl import threadpool_limits

    params = self.space.validate(params)
    x, y = load_dataset(self.dataset)
    split = StratifiedKFold if _DATASETS[self.dataset][1] else KFold
    cv = split(n_splits=self.folds, shuffle=True, random_state=self.seed)
    scorer_name, sign = _METRICS[self.metric]
    scorer, scores = get_scorer(scorer_name), []
    with threadpool_limits(1), warnings.catch_warnings(), np.errstate(all="ignore"):
      warnings.simplefilter("ignore")  # Convergence warnings are part of the landscape.
      estimator = self.make_estimator(params)
      for train, test in cv.split(x, y):
        try:
          fitted = clone(estimator).fit(x[train], y[train])
          scores.append(float(scorer(fitted, x[test], y[test])))
        except Exception:  # A failed fit is an infeasible trial, whatever the cause.
          return math.nan
    score = float(np.mean(scores))
    value = 1.0 - score if sign is None else sign * score
    return value if math.isfinite(value) else math.nan

  def describe(self) -> dict:
    """JSON-able description (for result files)."""
    return {
        "name": self.name, "model": self.model, "dataset": self.dataset, "metric": self.metric,
        "folds": self.folds, "seed": self.seed, "goal": self.goal, "space": self.space.to_json(),
    }


# -- Estimators: params -> unfitted estimator -----------------------------------


def _hgb(params):
  from sklearn.ensemble import HistGradientBoostingClassifier

  return HistGradientBoostingClassifier(
      learning_rate=params["learning_rate"], max_iter=params["max_iter"],
      max_leaf_nodes=params["max_leaf_nodes"], min_samples_leaf=params["min_samples_leaf"],
      l2_regularization=params["l2_regularization"], max_features=params["max_features"],
      max_bins=params["max_bins"],
      interaction_cst=None if params["interaction_cst"] == "none" else params["interaction_cst"],
      early_stopping=False, random_state=0,
  )


def _svc(params):
  from sklearn.svm import SVC

  return SVC(kernel="rbf", **params)  # predict() uses the decision function: no Platt scaling needed.


def _knn(params):
  from sklearn.neighbors import KNeighborsClassifier

  return KNeighborsClassifier(**params)


def _tree_regressor(params):
  from sklearn.tree import DecisionTreeRegressor

  return DecisionTreeRegressor(max_leaf_nodes=None, random_state=0, **params)


def _tree_classifier(params):
  from sklearn.tree import DecisionTreeClassifier

  return DecisionTreeClassifier(max_leaf_nodes=None, random_state=0, **params)


def _forest(params):
  from sklearn.ensemble import RandomForestClassifier

  return RandomForestClassifier(n_estimators=10, max_leaf_nodes=None, random_state=0, n_jobs=1, **params)


def _gb_regressor(params):
  from sklearn.ensemble import GradientBoostingRegressor

  return GradientBoostingRegressor(random_state=0, **params)


def _mlp_adam(params):
  from sklearn.neural_network import MLPClassifier

  return MLPClassifier(solver="adam", early_stopping=True, random_state=0, **params)


def _mlp_sgd(params):
  from sklearn.neural_network import MLPClassifier

  return MLPClassifier(
      solver="sgd", early_stopping=True, learning_rate="invscaling", nesterovs_momentum=True, random_state=0,
      **params,
  )


def _logistic(params):
  from sklearn.linear_model import LogisticRegression

  p = dict(params)
  l1_ratio = {"l1": 1.0, "l2": 0.0}[p.pop("penalty")]
  return LogisticRegression(solver="liblinear", l1_ratio=l1_ratio, fit_intercept=True, random_state=0, **p)


def _lasso(params):
  from sklearn.linear_model import Lasso

  return Lasso(random_state=0, **params)


def _elastic_net(params):
  from sklearn.linear_model import ElasticNet

  return ElasticNet(random_state=0, **params)


# -- Tasks ---------------------------------------------------------------------

# Bayesmark's shared parameter ranges.
_TREE_FRACTIONS = [  # Bayesmark DT / RF. Their "logit" scale: linear here up to 0.99, log below 0.5.
    Float("min_samples_split", 0.01, 0.99),
    Float("min_samples_leaf", 0.01, 0.49, log=True),
    Float("min_weight_fraction_leaf", 0.01, 0.49, log=True),
    Float("max_features", 0.01, 0.99),
    Float("min_impurity_decrease", 0.0, 0.5),
]
_MLP_COMMON = [  # Bayesmark MLP-adam and MLP-sgd.
    Int("hidden_layer_sizes", 50, 200),  # One hidden layer of this many units.
    Float("alpha", 1e-5, 1e1, log=True),
    Int("batch_size", 10, 250),
    Float("learning_rate_init", 1e-5, 1e-1, log=True),
    Float("tol", 1e-5, 1e-1, log=True),
    Float("validation_fraction", 0.1, 0.9),  # Logit scale in Bayesmark.
]


def hgb_breast_cancer() -> SklearnTask:
  """The demo task: HistGradientBoostingClassifier on breast_cancer, 3-fold CV log-loss.

  8 parameters (all four kinds; our space, Bayesmark has no gradient
  boosting). One evaluation takes ~0.04 s + ~2 ms per boosting iteration on
  one core, so max_iter is capped at 50. Log-loss rather than error: on 569
  samples the error is a step function of the parameters (steps of 1/569),
  the log-loss is smooth but non-trivial (a too-high learning rate overfits,
  a too-low one underfits, the two interact with max_iter).
  """
  space = SearchSpace([
      Float("learning_rate", 1e-3, 1.0, log=True),
      Int("max_iter", 10, 50, log=True),
      Int("max_leaf_nodes", 2, 64, log=True),
      Int("min_samples_leaf", 1, 64, log=True),
      Float("l2_regularization", 1e-6, 10.0, log=True),
      Float("max_features", 0.1, 1.0),
      Discrete("max_bins", [15, 31, 63, 127, 255]),
      Categorical("interaction_cst", ["none", "pairwise", "no_interactions"]),
  ])
  return SklearnTask(DEMO_TASK, space, _hgb, "breast_cancer", "log_loss", model="HistGradientBoostingClassifier")


def svm_digits() -> SklearnTask:
  """SVC (RBF kernel) on digits, 5-fold CV error. Bayesmark SVM: C, gamma, tol, all log."""
  space = SearchSpace([
      Float("C", 1.0, 1e3, log=True), Float("gamma", 1e-4, 1e-3, log=True), Float("tol", 1e-5, 1e-1, log=True),
  ])
  return SklearnTask("svm_digits", space, _svc, "digits", "error", folds=5, model="SVC (RBF)")


def knn_wine() -> SklearnTask:
  """KNeighborsClassifier on wine, 5-fold CV error. Bayesmark kNN (n_neighbors, p) + `weights` (ours)."""
  space = SearchSpace([
      Int("n_neighbors", 1, 25), Int("p", 1, 4), Categorical("weights", ["uniform", "distance"]),
  ])
  return SklearnTask("knn_wine", space, _knn, "wine", "error", folds=5, model="KNeighborsClassifier")


def dt_diabetes() -> SklearnTask:
  """DecisionTreeRegressor on diabetes, 5-fold CV MSE. Bayesmark DT + `criterion` (ours)."""
  space = SearchSpace([
      Int("max_depth", 1, 15), *_TREE_FRACTIONS, Categorical("criterion", ["squared_error", "absolute_error", "poisson"]),
  ])
  return SklearnTask("dt_diabetes", space, _tree_regressor, "diabetes", "mse", folds=5, model="DecisionTreeRegressor")


def dt_wine() -> SklearnTask:
  """DecisionTreeClassifier on wine, 5-fold CV error. Bayesmark DT + `criterion` (ours)."""
  space = SearchSpace([Int("max_depth", 1, 15), *_TREE_FRACTIONS, Categorical("criterion", ["gini", "entropy"])])
  return SklearnTask("dt_wine", space, _tree_classifier, "wine", "error", folds=5, model="DecisionTreeClassifier")


def rf_breast_cancer() -> SklearnTask:
  """RandomForestClassifier (10 trees) on breast_cancer, 5-fold CV log-loss. Bayesmark RF + `criterion` (ours)."""
  space = SearchSpace([Int("max_depth", 1, 15), *_TREE_FRACTIONS, Categorical("criterion", ["gini", "entropy"])])
  return SklearnTask("rf_breast_cancer", space, _forest, "breast_cancer", "log_loss", folds=5,
                     model="RandomForestClassifier")


def gb_diabetes() -> SklearnTask:
  """GradientBoostingRegressor on diabetes, 5-fold CV MAE. Our space (Bayesmark has no gradient boosting).

  n_estimators <= 50 and max_depth <= 4 keep the slowest corner (absolute
  error, whose leaf values are medians computed per leaf) near 0.6 s; the
  huber loss is left out for the same reason (~3x slower).
  """
  space = SearchSpace([
      Float("learning_rate", 1e-3, 1.0, log=True),
      Int("n_estimators", 10, 50, log=True),
      Int("max_depth", 1, 4),
      Float("subsample", 0.3, 1.0),
      Float("max_features", 0.1, 1.0),
      Int("min_samples_leaf", 1, 64, log=True),
      Categorical("loss", ["squared_error", "absolute_error"]),
  ])
  return SklearnTask("gb_diabetes", space, _gb_regressor, "diabetes", "mae", folds=5, model="GradientBoostingRegressor")


def mlp_adam_iris() -> SklearnTask:
  """MLPClassifier (adam, early stopping) on iris, 5-fold CV log-loss.

  Bayesmark MLP-adam without `epsilon` (fixed at 1e-8; 8 parameter slots);
  beta_1, beta_2 and validation_fraction are on a logit scale there, linear here.
  """
  space = SearchSpace([
      *_MLP_COMMON, Float("beta_1", 0.5, 0.99), Float("beta_2", 0.9, 1.0 - 1e-6),
  ])
  return SklearnTask("mlp_adam_iris", space, _mlp_adam, "iris", "log_loss", folds=5, model="MLPClassifier (adam)")


def mlp_sgd_wine() -> SklearnTask:
  """MLPClassifier (SGD, Nesterov momentum, inverse-scaling rate, early stopping) on wine, 5-fold CV error.

  Bayesmark MLP-sgd (8 parameters); power_t, momentum and validation_fraction
  are on a logit scale there, linear here.
  """
  space = SearchSpace([*_MLP_COMMON, Float("power_t", 0.1, 0.9), Float("momentum", 0.001, 0.999)])
  return SklearnTask("mlp_sgd_wine", space, _mlp_sgd, "wine", "error", folds=5, model="MLPClassifier (SGD)")


def logreg_breast_cancer() -> SklearnTask:
  """LogisticRegression (liblinear) on breast_cancer, 5-fold CV log-loss.

  Bayesmark's "lasso" and "linear" classifiers (C, intercept_scaling, log)
  joined by a `penalty` categorical, l1 or l2 (ours).
  """
  space = SearchSpace([
      Float("C", 1e-2, 1e2, log=True), Float("intercept_scaling", 1e-2, 1e2, log=True), Categorical("penalty", ["l1", "l2"]),
  ])
  return SklearnTask("logreg_breast_cancer", space, _logistic, "breast_cancer", "log_loss", folds=5,
                     model="LogisticRegression")


def lasso_diabetes() -> SklearnTask:
  """Lasso on diabetes, 5-fold CV MAE. Bayesmark lasso regressor without `normalize` (gone from scikit-learn)."""
  space = SearchSpace([
      Float("alpha", 1e-2, 1e2, log=True),
      Categorical("fit_intercept", [True, False]),
      Int("max_iter", 10, 5000, log=True),
      Float("tol", 1e-5, 1e-1, log=True),
      Categorical("positive", [True, False]),
  ])
  return SklearnTask("lasso_diabetes", space, _lasso, "diabetes", "mae", folds=5, model="Lasso")


def elasticnet_diabetes() -> SklearnTask:
  """ElasticNet on diabetes, 5-fold CV MSE.

  Bayesmark's lasso regressor space with `l1_ratio` (ours) instead of
  `positive`, and alpha in [1e-4, 10] rather than [1e-2, 1e2] (ours: on
  diabetes' small-scale features alpha >= 1 shrinks most fits to the mean,
  which `lasso_diabetes` already covers).
  """
  space = SearchSpace([
      Float("alpha", 1e-4, 1e1, log=True),
      Float("l1_ratio", 0.0, 1.0),
      Categorical("fit_intercept", [True, False]),
      Int("max_iter", 10, 5000, log=True),
      Float("tol", 1e-5, 1e-1, log=True),
  ])
  return SklearnTask("elasticnet_diabetes", space, _elastic_net, "diabetes", "mse", folds=5, model="ElasticNet")


TASKS: dict[str, Callable[[], SklearnTask]] = {
    DEMO_TASK: hgb_breast_cancer,
    "svm_digits": svm_digits,
    "knn_wine": knn_wine,
    "dt_diabetes": dt_diabetes,
    "dt_wine": dt_wine,
    "rf_breast_cancer": rf_breast_cancer,
    "gb_diabetes": gb_diabetes,
    "mlp_adam_iris": mlp_adam_iris,
    "mlp_sgd_wine": mlp_sgd_wine,
    "logreg_breast_cancer": logreg_breast_cancer,
    "lasso_diabetes": lasso_diabetes,
    "elasticnet_diabetes": elasticnet_diabetes,
}


def get_task(name: str) -> SklearnTask:
  """The task registered as `name`. Raises ValueError if unknown."""
  if name not in TASKS:
    raise ValueError(f"Unknown task {name!r}; known: {sorted(TASKS)}.")
  return TASKS[name]()


def time_task(task: SklearnTask, num_evals: int, seed: int = 0) -> dict:
  """Evaluates `num_evals` uniform configs (space.sample, numpy seed) and times them.

  Returns:
    {"mean_seconds", "max_seconds": float (wall seconds per evaluation),
     "fraction_nan": float in [0, 1], "min", "median", "max": float (objective, NaNs ignored)}.
  """
  rng = np.random.default_rng(seed)
  seconds, values = [], []
  for _ in range(num_evals):
    params = task.space.sample(rng)
    t0 = time.perf_counter()
    values.append(task(params))
    seconds.append(time.perf_counter() - t0)
  v = np.array(values)
  ok = v[np.isfinite(v)]
  stats = (float(ok.min()), float(np.median(ok)), float(ok.max())) if len(ok) else (math.nan,) * 3
  return {"mean_seconds": float(np.mean(seconds)), "max_seconds": float(np.max(seconds)),
          "fraction_nan": float(np.mean(~np.isfinite(v))), **dict(zip(("min", "median", "max"), stats))}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description="Times every registered task on random configurations (one core).")
  p.add_argument("--evals", type=int, default=20, help="random configurations per task (default 20)")
  p.add_argument("--tasks", nargs="*", default=None, help="task names (default: all)")
  args = p.parse_args(argv)
  print(f"{'task':<22} {'model':<32} {'data':<14} {'metric':<9} {'D':>2} {'s/eval':>7} {'max s':>6} "
        f"{'NaN':>5} {'min':>9} {'median':>9} {'max':>9}")
  for name in args.tasks or TASKS:
    t = get_task(name)
    r = time_task(t, args.evals)
    print(f"{name:<22} {t.model:<32} {t.dataset:<14} {t.metric:<9} {len(t.space):>2} {r['mean_seconds']:>7.3f} "
          f"{r['max_seconds']:>6.2f} {r['fraction_nan']:>5.2f} {r['min']:>9.4g} {r['median']:>9.4g} {r['max']:>9.4g}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
