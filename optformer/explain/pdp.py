"""Partial dependence (PDP) and individual conditional expectation (ICE) curves from the in-context surrogate.

For a set S of one or two parameters, with the rest C, the partial
dependence at l_S is the Monte-Carlo mean over the study's n observed
configurations l_C^(i) (Friedman 2001; Moosbauer et al., "Explaining
Hyperparameter Optimization via Partial Dependence Plots", NeurIPS 2021,
Eq. 2):

  c_S(l_S)       = (1/n) sum_i m(l_S, l_C^(i))            m: the predictive mean
  sigma_S^2(l_S) = (1/n) sum_i Var[y(l_S, l_C^(i))]       their model-agnostic variance estimate (Sec. 3)
  ICE_i(l_S)     = m(l_S, l_C^(i))

All n * |grid| predictions are scored in a few fixed-shape calls of the model.

Conditional search spaces: l_S is set in each observed configuration and the
result completed (`study.complete`: parameters switched off are dropped,
ones switched on take the centre of their range). ICE_i(l_S) is NaN where a
parameter of S is inactive in that configuration (its value means nothing
there), and c_S and sigma_S average over the configurations where it is
active (NaN where it is active in none): for a child parameter, the partial
dependence among the configurations whose parents switch it on.
"""

from __future__ import annotations

import dataclasses
import itertools
import numbers
from typing import Any, Sequence

import numpy as np

from optformer import search_space as ss
from optformer.explain import study as study_lib

DEFAULT_GRID_1D = 20  # Grid points of a single numeric parameter.
DEFAULT_GRID_2D = 10  # Grid points per parameter of a pair.


@dataclasses.dataclass(frozen=True)
class PartialDependence:
  """Partial dependence of the predicted objective on one parameter or a pair.

  Letters: n observed configurations, G (G0, G1) grid points.

  Attributes:
    params: the parameter names, (a,) or (a, b).
    grid: one parameter: its grid values [G] (float64 for numeric
      parameters, object for categorical ones: one entry per category, in the
      space's order); a pair: a tuple (grid_a [G0], grid_b [G1]).
    mean: float64 [G] or [G0, G1]: c_S, the partial dependence, in objective units.
    std: float64 [G] or [G0, G1]: sqrt((1/n) sum_i Var[y(l_S, l_C^(i))]), in objective units.
    ice: float64 [n, G] or [n, G0, G1]: the ICE curves, one per observed configuration.
    (In a conditional space NaN marks a parameter of `params` that is inactive
    there, and mean and std average the rest: see the module docstring.)
    goal: the study's "minimize" or "maximize".
  """

  params: tuple[str, ...]
  grid: Any
  mean: np.ndarray
  std: np.ndarray
  ice: np.ndarray
  goal: str

  def to_json(self) -> dict:
    """A JSON-able dict of the numbers (grids as lists, categories as written in the space; NaN as null)."""
    grids = self.grid if len(self.params) == 2 else (self.grid,)
    numbers = lambda a: np.where(np.isnan(a), None, a).tolist()
    return {
        "params": list(self.params), "goal": self.goal, "grid": [g.tolist() for g in grids],
        "mean": numbers(self.mean), "std": numbers(self.std), "ice": numbers(self.ice),
    }


def _is_count(x) -> bool:
  return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def grid_values(param: ss.Parameter, spec) -> np.ndarray:
  """The grid of one parameter.

  Args:
    param: a search-space parameter.
    spec: an int G >= 2 (Float: G points evenly spaced in unit space, so
      geometrically spaced for a log-scale parameter; Int / Discrete: every
      level when there are at most G, else G levels evenly spaced in unit
      space; Categorical: every category, G ignored), or a sequence of
      values of the parameter.

  Returns:
    float64 [G] for numeric parameters, object [K] for categorical ones.

  Raises:
    ValueError: an int below 2, a value outside the parameter, an empty
      sequence, or a spec that is neither an int nor a sequence.
  """
  categorical = isinstance(param, ss.Categorical)
  if _is_count(spec):
    if spec < 2:
      raise ValueError(f"grid for parameter {param.name!r} must be an int >= 2 or a sequence of values, got {spec!r}.")
    if categorical:
      values = list(param.choices)
    elif isinstance(param, ss.Float):
      values = [param.from_unit(u) for u in np.linspace(0.0, 1.0, int(spec))]
    elif param.num_values <= spec:
      values = list(range(param.low, param.high + 1)) if isinstance(param, ss.Int) else list(param.values)
    else:
      values = sorted({param.from_unit(u) for u in np.linspace(0.0, 1.0, int(spec))})
  elif isinstance(spec, (str, bytes)) or not isinstance(spec, (Sequence, np.ndarray)):
    raise ValueError(f"grid for parameter {param.name!r} must be an int >= 2 or a sequence of its values, "
                     f"got {type(spec).__name__} {spec!r}.")
  else:
    if len(spec) == 0:
      raise ValueError(f"grid for parameter {param.name!r} is empty; expected at least one value.")
    values = []
    for v in (spec.tolist() if isinstance(spec, np.ndarray) else spec):
      try:
        v = param.validate(v)
      except (TypeError, ValueError) as e:
        raise ValueError(f"grid for parameter {param.name!r}: {e}") from e
      if not any(type(v) is type(w) and v == w for w in values):
        values.append(v)
  out = np.empty(len(values), object)
  out[:] = values
  return out if categorical else out.astype(np.float64)


def _cast(param: ss.Parameter, v):
  """A grid entry as the parameter's value type (float64 grids hold Int/Discrete levels as floats)."""
  return v if isinstance(param, ss.Categorical) else param.validate(v.item() if isinstance(v, np.generic) else v)


def _names(view: study_lib.StudyView, param_or_pair) -> tuple[str, ...]:
  if isinstance(param_or_pair, str):
    return (study_lib.check_param(view, param_or_pair),)
  if not isinstance(param_or_pair, (tuple, list)) or len(param_or_pair) != 2:
    raise ValueError(f"param_or_pair must be a parameter name or a pair (name, name), got {param_or_pair!r}.")
  a, b = (study_lib.check_param(view, n) for n in param_or_pair)
  if a == b:
    raise ValueError(f"param_or_pair names the same parameter twice ({a!r}, {b!r}); expected two different "
                     "parameters, or a single name.")
  return a, b


def _grids(view: study_lib.StudyView, names: tuple[str, ...], grid) -> list[np.ndarray]:
  if grid is None:
    grid = DEFAULT_GRID_1D if len(names) == 1 else DEFAULT_GRID_2D
  if len(names) == 1:
    return [grid_values(view.space[names[0]], grid)]
  if _is_count(grid):
    return [grid_values(view.space[n], grid) for n in names]
  if not isinstance(grid, (tuple, list)) or len(grid) != 2:
    raise ValueError(f"grid for the pair {names} must be an int >= 2 or a pair (grid_a, grid_b) of ints or "
                     f"sequences of values, got {grid!r}.")
  return [grid_values(view.space[n], g) for n, g in zip(names, grid)]


def partial_dependence(study, param_or_pair, grid=None) -> PartialDependence:
  """Partial dependence and ICE curves of the predicted objective (Moosbauer et al., NeurIPS 2021, Eq. 2).

  Args:
    study: an optformer.Optimizer, a fitted optformer.Surrogate, or an
      optuna.Study (its completed trials; needs optuna installed).
    param_or_pair: a parameter name, or a pair (a, b) of two different names.
    grid: None (20 points for one parameter, 10 per parameter for a pair),
      an int G >= 2, or explicit values: a sequence of the parameter's
      values (one parameter), or a pair (grid_a, grid_b) of ints or
      sequences (a pair). See `grid_values` for how a grid is laid out;
      categorical parameters always get every category unless given values.

  Returns:
    A PartialDependence (shapes there), in objective units, over the study's
    n feasible trials as the Monte-Carlo sample of the other parameters.

  Raises:
    ValueError: an unknown parameter name, a pair naming one parameter twice,
      a grid of the wrong kind or with values outside the parameter, or a
      study with fewer than 2 feasible trials.
    TypeError: `study` is none of the accepted types.
  """
  view = study_lib.as_study(study)
  names = _names(view, param_or_pair)
  grids = _grids(view, names, grid)
  params = [view.space[n] for n in names]
  points = [dict(zip(names, (_cast(p, v) for p, v in zip(params, combo)))) for combo in itertools.product(*grids)]
  # [n * G] row-major: configuration, then grid point; completed in a conditional space (module docstring).
  configs = [study_lib.complete(view.space, {**c, **pt}) for c in view.configs for pt in points]
  mean, var = view.predict(configs)
  shape = (len(view.configs),) + tuple(len(g) for g in grids)
  held = np.array([all(n in c for n in names) for c in configs], bool)  # False: a parameter of S inactive.
  mean, var = np.where(held, mean, np.nan), np.where(held, var, np.nan)
  ice = mean.reshape(shape)
  return PartialDependence(
      params=names, grid=grids[0] if len(names) == 1 else tuple(grids), mean=_nanmean(ice),
      std=np.sqrt(_nanmean(var.reshape(shape))), ice=ice, goal=view.goal,
  )


def _nanmean(x_NxG) -> np.ndarray:
  """The mean over axis 0 of the non-NaN entries; NaN where there are none."""
  if not np.isnan(x_NxG).any():
    return x_NxG.mean(axis=0)
  count = np.sum(~np.isnan(x_NxG), axis=0)
  total = np.nansum(x_NxG, axis=0)
  return np.where(count > 0, total / np.maximum(count, 1), np.nan)
