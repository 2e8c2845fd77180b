"""A scikit-learn-style regressor on the pretrained model, for a user's own BO loop.

`Surrogate` has the interface of `sklearn.gaussian_process.GaussianProcessRegressor`
where it matters to a Bayesian-optimization loop:

  GaussianProcessRegressor            Surrogate
  ---------------------------------   ----------------------------------------------
  fit(X, y) -> self                   fit(X, y) -> self: stores the context, no
                                      gradient steps and no hyperparameter fitting
  predict(X) -> mean [m]              predict(X) -> mean float64 [m]
  predict(X, return_std=True)         predict(X, return_std=True) -> (mean, std)
  predict(X, return_cov=True)         not supported (the model predicts marginals)
  sample_y(X, n_samples, random_state) sample_y(...) -> [m, n_samples], independent
                                      draws from each marginal (a GP draws jointly
                                      across X; these are not correlated across X)
  kernel, alpha, optimizer, ...       none: the "kernel" is what the model learned
                                      from its prior (a GP prior for the shipped one)
  get_params / set_params, clone      the same, over space, goal, model
                                      (GridSearchCV, cross_val_score, Pipeline work)
  score(X, y, sample_weight) -> R^2   the same, of the predicted mean
  X: float [n, d]                     X: a list of configurations (dicts), or an
                                      array-like [n, d] of values in the search
                                      space's parameter order (categoricals by value)
  (any number of training points)     at most the model's context (`max_context`:
                                      256 for the shipped model): a
                                      longer history is truncated to the best half
                                      and the most recent rows, with a warning,
                                      exactly as Optimizer does
  (no goal)                           goal: "minimize" or "maximize". The model reads
                                      y in the goal's direction (larger is better),
                                      where it fits its y map (`optformer.model.ynorm`).
                                      The goal also sets the direction of EI/PI/UCB
                                      in predict_distribution. Means stay in y's units.

Conditional search spaces (parameters with a `Condition`): a dict row
holds exactly its active parameters; an array row has every column, with
NaN (or None) in the cells of its inactive parameters (a pandas DataFrame's
missing values read the same way). A value in an inactive cell, or NaN in
an active one, raises ValueError naming the row and the parameter. The
model reads each row's active mask (`SearchSpace.unit_active_mask`), at fit
and at predict.

`predict_distribution(X)` returns the full predictive distribution, a
`inference.PFNPredictive` (mean, std, quantile, cdf, pdf, log_prob,
expected_improvement, probability_of_improvement, upper_confidence_bound,
p_feasible); its improvement-based acquisition functions default to the
best y in the goal's direction.

It predicts through the same pieces as `optformer.Optimizer`: the context
policy of `optformer.context` (truncation, with the warning at `fit`) and
the model boundary `optformer.model` (normalization of the objective's
scale, predictions in y's units), so a Surrogate fitted on a study's trials
predicts what the Optimizer predicts. One difference: `fit` rejects
non-finite y with ValueError, as scikit-learn regressors do, where
`Optimizer.tell` records them as infeasible trials; pass
`fit(X, y, infeasible=mask)` for failed or constraint-violating trials
(their y is ignored), and `predict_distribution(X).p_feasible` is then the
model's p(feasible | x). Several objectives: one Surrogate per objective.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from optformer import context as context_lib
from optformer import search_space as ss
from optformer.context import Context
from optformer.model import Backend, Posterior
from optformer.designer import with_best
from optformer.study import MAX_ABS_OBJECTIVE

if TYPE_CHECKING:
  from optformer.model.inference import PFNPredictive


_PARAMS = ("space", "goal", "model")  # Surrogate's constructor arguments (get_params, set_params).


class NotFittedError(ValueError, AttributeError):
  """`predict` before `fit`. Same bases as sklearn.exceptions.NotFittedError, so `except ValueError` catches both."""


class Surrogate:
  """The pretrained model as an in-context regressor of the objective.

  Args:
    space: the SearchSpace that configurations come from.
    goal: "minimize" or "maximize": the direction the user's loop optimizes y
      (see the module docstring for why the model needs it).
    model: a model (`network.PFNSurrogate`), a checkpoint directory, or None for the
      shipped one.

  Attributes after `fit`:
    X_train_: list of the n validated configurations (dicts), in fit order.
    y_train_: float64 [n], the objectives, in y's units.
    n_features_in_: int, the number of parameters d.

  Raises:
    TypeError: space is not a SearchSpace, or model is neither a model, a path nor None.
    ValueError: a bad goal, model="", or a space with more parameters than
      the model supports (64 for the shipped model).
    optformer.CheckpointError: a missing, corrupt, mismatched or retired (model v1) checkpoint.
  """

  def __init__(self, space: ss.SearchSpace, *, goal: str = "minimize", model=None):
    if not isinstance(space, ss.SearchSpace):
      raise TypeError(f"space must be an optformer.SearchSpace, got {type(space).__name__}.")
    if goal not in ("minimize", "maximize"):
      raise ValueError(f"goal must be 'minimize' or 'maximize', got {goal!r}.")
    self.space, self.goal, self.model = space, goal, model
    # Loads the model and checks the space now, not at the first fit.
    self._model = Backend.for_space(model, space)
    self._model.engine  # Loaded now, not at the first fit.
    self._posterior: Posterior | None = None

  # -- scikit-learn's estimator API --------------------------------------------

  def get_params(self, deep: bool = True) -> dict[str, Any]:
    """The constructor's arguments {space, goal, model}, as scikit-learn estimators give them, so
    `sklearn.base.clone`, `GridSearchCV` and `cross_val_score` work. `deep` is accepted and has no effect
    (no argument is itself an estimator)."""
    return {name: getattr(self, name) for name in _PARAMS}

  def set_params(self, **params) -> "Surrogate":
    """Changes constructor arguments (scikit-learn's estimator API) and returns self, unfitted: the new
    arguments are checked, and the model loaded, as by the constructor.

    Raises:
      ValueError: an unknown argument name; otherwise as the constructor. Nothing changes then.
    """
    unknown = sorted(set(params) - set(_PARAMS))
    if unknown:
      raise ValueError(f"Invalid parameter(s) {unknown} for Surrogate; the parameters are {list(_PARAMS)}.")
    fresh = type(self)(**{**self.get_params(), **params})
    self.__dict__.clear()
    self.__dict__.update(fresh.__dict__)
    return self

  def __sklearn_tags__(self):
    """scikit-learn's estimator tags (read only by scikit-learn, so it is imported here): a regressor that
    validates its own input, rows of numbers and strings (categoricals by value) or dicts."""
    from sklearn.utils import InputTags, RegressorTags, Tags, TargetTags

    return Tags(estimator_type="regressor", target_tags=TargetTags(required=True), regressor_tags=RegressorTags(),
                input_tags=InputTags(categorical=True, string=True, dict=True), no_validation=True)

  def score(self, X, y, sample_weight=None) -> float:
    """R^2 of the predicted mean against y (scikit-learn's `RegressorMixin.score`): 1 - sum w (y - mean)^2 /
    sum w (y - average y)^2; for constant y, 1.0 when every prediction is exact, else 0.0 (as
    `sklearn.metrics.r2_score`).

    Args:
      X: m configurations, in either form that `fit` accepts; y: float [m] finite objectives;
      sample_weight: float [m] >= 0 or None (all 1).

    Raises:
      NotFittedError: before `fit`. ValueError / TypeError: as `predict` and `fit` for X and y, or
        sample_weight of another length.
    """
    y_m = _objectives(y)
    mean = self.predict(X)
    if len(mean) != len(y_m):
      raise ValueError(f"X has {len(mean)} rows but y has {len(y_m)} values; they must match.")
    w = np.ones_like(y_m) if sample_weight is None else np.asarray(sample_weight, np.float64).reshape(-1)
    if w.shape != y_m.shape:
      raise ValueError(f"sample_weight has {w.size} values; expected {len(y_m)}, one per row.")
    residual = float(np.sum(w * (y_m - mean) ** 2))
    total = float(np.sum(w * (y_m - np.average(y_m, weights=w)) ** 2))
    if total == 0.0:
      return 1.0 if residual == 0.0 else 0.0
    return 1.0 - residual / total

  # -- Fit -------------------------------------------------------------------

  def fit(self, X, y, infeasible=None) -> "Surrogate":
    """Stores (X, y) as the model's context, replacing any earlier fit; returns self.

    Args:
      X: n configurations: a list of dicts name -> value, or an array-like
        [n, d] of values in `space.names` order (an object array or a list of
        rows to mix numbers and strings). In a conditional space a dict
        leaves its inactive parameters out and a row holds NaN or None there.
      y: float [n] (or [n, 1]) objectives, finite, in any units.
      infeasible: None, or bool [n]: trials that failed or violated a
        constraint (their y is ignored and may be NaN). They enter the
        context as infeasible, as `Optimizer.tell` records them, so
        `predict_distribution(X).p_feasible` (float [m] in [0, 1]) is the
        model's p(feasible | x) and the other predictions are given
        feasibility. At least one trial must be feasible.

    Raises:
      ValueError: n = 0, len(X) != len(y), a non-finite y (NaN, +-inf) of a
        feasible trial, an `infeasible` mask of another length or marking
        every trial, a row
        of the wrong width, or a configuration not in the space (unknown,
        missing or out-of-range parameter); the error names the row.
      TypeError: non-numeric or boolean y (Optimizer.tell refuses booleans
        too), a value of the wrong type, or X that is not a list of
        configurations.
      A failed fit leaves an earlier fit in place.
    """
    configs = self._configs(X, "X")
    skip = None if infeasible is None else np.asarray(infeasible).reshape(-1)
    if skip is not None and (skip.dtype.kind != "b" or len(skip) != np.asarray(y).shape[0]):
      raise ValueError(f"infeasible must be None or bool [n] with n = len(y) = {np.asarray(y).shape[0]}, got "
                       f"dtype {skip.dtype} and {len(skip)} values.")
    y_n = _objectives(y, skip)
    if len(configs) != len(y_n):
      raise ValueError(f"X has {len(configs)} rows but y has {len(y_n)} values; they must match.")
    if not configs:
      raise ValueError("fit needs at least one trial, got X and y of length 0.")
    if skip is not None and skip.all():
      raise ValueError("fit needs at least one feasible trial (it sets the objective's scale); every trial is infeasible.")
    internal = y_n if self.goal == "maximize" else -y_n  # The model reads larger-is-better objectives.
    rows = [(self.space.to_unit(c), float(v)) for c, v in zip(configs, internal)]
    limit = self._model.capabilities.max_context
    if len(rows) > limit:
      warnings.warn(context_lib.truncation_warning(len(rows), limit), stacklevel=2)
    context = Context.from_rows(rows, len(self.space), limit)
    self._posterior = self._model.condition(context, self._active(context.units))
    self.X_train_ = configs
    self.y_train_ = y_n
    self.n_features_in_ = len(self.space)
    return self

  def _predict_units(self, configs):
    """The predictive distribution at validated configurations, with the improvement defaults of the fit's best y."""
    units = self.space.to_units(configs)
    best = float(np.nanmax(self.y_train_) if self.goal == "maximize" else np.nanmin(self.y_train_))
    return with_best(self._posterior.predict(units, self._active(units), goal=self.goal), best)

  def _active(self, units) -> np.ndarray | None:
    """bool [n, D] active mask of unit rows in a conditional space; None (all active) otherwise."""
    return self.space.unit_active_mask(units) if self.space.is_conditional else None

  # -- Predict ---------------------------------------------------------------

  def predict_distribution(self, X) -> PFNPredictive:
    """The predictive distribution of y at each of m configurations.

    Args:
      X: m configurations, in either form that `fit` accepts (m may be 0).

    Returns:
      m distributions in y's units with `goal` set, a
      `inference.PFNPredictive`. Its expected_improvement() and
      probability_of_improvement() default to the best y seen (min(y) for
      "minimize", max(y) for "maximize").

    Raises:
      NotFittedError: called before `fit`.
      ValueError / TypeError: a configuration not in the space (as for `fit`).
    """
    if self._posterior is None:
      raise NotFittedError("This Surrogate is not fitted yet; call fit(X, y) before predicting.")
    return self._predict_units(self._configs(X, "X"))

  def predict(self, X, return_std: bool = False):
    """Predictive mean (and standard deviation) of y, as GaussianProcessRegressor.predict.

    Args:
      X: m configurations, in either form that `fit` accepts.
      return_std: also return the standard deviation.

    Returns:
      mean float64 [m], or (mean, std) float64 [m] each, in y's units; std > 0.

    Raises:
      As `predict_distribution`.
    """
    dist = self.predict_distribution(X)
    return (dist.mean, dist.std) if return_std else dist.mean

  def sample_y(self, X, n_samples: int = 1, random_state: int | np.random.Generator | None = 0) -> np.ndarray:
    """Draws from each configuration's predictive distribution.

    Unlike GaussianProcessRegressor.sample_y the draws are independent across
    the m configurations (the model predicts marginals, not a joint): the
    inverse CDF of each distribution at uniform draws.

    Args:
      X: m configurations, in either form that `fit` accepts.
      n_samples: draws per configuration, >= 1.
      random_state: a seed, a numpy Generator, or None.

    Returns:
      float64 [m, n_samples] in y's units.

    Raises:
      ValueError: n_samples < 1; otherwise as `predict_distribution`.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
      raise ValueError(f"n_samples must be an int >= 1, got {n_samples!r}.")
    dist = self.predict_distribution(X)
    rng = np.random.default_rng(random_state)
    u_MxS = rng.random((len(dist), int(n_samples)))
    return np.stack([dist.quantile(np.clip(u_MxS[:, j], 1e-12, 1 - 1e-12)) for j in range(u_MxS.shape[1])], axis=1)

  # -- Input -----------------------------------------------------------------

  def _configs(self, X, what: str) -> list[dict[str, Any]]:
    """Validated configurations from a list of dicts or an array-like [n, d]."""
    if isinstance(X, Mapping):
      raise TypeError(f"{what} must be a list of configurations; got a single dict (wrap it in a list).")
    columns = getattr(X, "columns", None)  # A pandas DataFrame: its columns must be the space's, in order.
    if columns is not None and list(columns) != self.space.names:
      raise ValueError(f"{what} has columns {list(columns)}; expected the parameters {self.space.names} in that order.")
    if not isinstance(X, (list, tuple)):
      X = np.asarray(X)
    if isinstance(X, np.ndarray):
      if X.dtype.kind in "US":
        raise TypeError(
            f"{what} is an array of strings (numpy turns a mix of numbers and strings into strings); "
            "pass a list of rows, a list of dicts, or an object array np.array(rows, dtype=object)."
        )
      if X.ndim != 2:
        raise ValueError(f"{what} must be 2-D [n, {len(self.space)}] (one row per configuration), got shape {X.shape}.")
      X = X.tolist()  # numpy scalars -> Python numbers
    is_dict = [isinstance(row, Mapping) for row in X]
    if any(is_dict) and not all(is_dict):
      raise TypeError(f"{what} mixes dicts and rows; use one form.")
    out = []
    for i, row in enumerate(X):
      if not is_dict[i]:
        if isinstance(row, (str, bytes)) or not isinstance(row, (Sequence, np.ndarray)):
          raise ValueError(
              f"{what} must be 2-D [n, {len(self.space)}]: {what}[{i}] = {row!r} is not a row of values "
              "(for a single parameter write [[v] for v in values])."
          )
        if len(row) != len(self.space):
          raise ValueError(
              f"{what}[{i}] has {len(row)} values; the search space has {len(self.space)} parameters "
              f"{self.space.names} (in that order)."
          )
        row = dict(zip(self.space.names, row))
        if self.space.is_conditional:  # NaN or None marks an inactive parameter's cell.
          row = {n: v for n, v in row.items() if not _is_blank(v)}
      try:
        out.append(self.space.validate(row, allow_forbidden=True))  # A regressor reads any point in the ranges.
      except (TypeError, ValueError) as e:
        hint = (" (an array row holds NaN or None for each inactive parameter)"
                if self.space.is_conditional and not is_dict[i] else "")
        raise type(e)(f"{what}[{i}]: {e}{hint}") from e
    return out


def _is_blank(v) -> bool:
  """Whether an array cell marks an inactive parameter: None or a float NaN."""
  return v is None or (isinstance(v, (float, np.floating)) and v != v)


def _objectives(y, skip=None) -> np.ndarray:
  """float64 [n] from a 1-D (or [n, 1]) array-like of finite numbers; NaN where bool [n] `skip` is True."""
  y = np.asarray(y)
  if y.dtype.kind == "b":  # As Optimizer.tell: True is not an objective.
    raise TypeError(f"y must hold numbers, got booleans ({y.ravel()[:3].tolist()!r}...); pass y.astype(float) if you mean 0 and 1.")
  if y.dtype.kind not in "iuf":
    raise TypeError(f"y must hold numbers, got dtype {y.dtype} ({y.ravel()[:3].tolist()!r}...).")
  if y.ndim == 2 and y.shape[1] == 1:
    y = y[:, 0]
  if y.ndim != 1:
    raise ValueError(f"y must be 1-D [n] (one objective), got shape {y.shape}.")
  y = y.astype(np.float64)
  if skip is not None:
    y[skip] = np.nan
  bad = np.flatnonzero(~np.isfinite(y) & (np.ones(len(y), bool) if skip is None else ~skip))
  if bad.size:
    raise ValueError(
        f"y[{bad[0]}] = {y[bad[0]]} is not finite ({bad.size} non-finite value(s)); a regressor needs finite "
        "targets. Drop failed trials, or use optformer.Optimizer, which records NaN/inf as infeasible."
    )
  big = np.flatnonzero(np.abs(y) > MAX_ABS_OBJECTIVE)
  if big.size:
    raise ValueError(f"y[{big[0]}] = {y[big[0]]:g} is beyond +-{MAX_ABS_OBJECTIVE:g}: the objective's scale would "
                     "overflow float64. Rescale y (e.g. take its logarithm).")
  return y
