"""Optuna <-> optformer search spaces, one parameter at a time:

| optformer                     | Optuna                                        |
| ----------------------------- | --------------------------------------------- |
| Float(low, high, log)         | FloatDistribution(low, high, log)             |
| Int(low, high, log)           | IntDistribution(low, high, log)  (step 1)     |
| Discrete, evenly spaced ints  | IntDistribution(low, high, step)              |
| Discrete, evenly spaced floats| FloatDistribution(low, high, step)            |
| Discrete, other levels        | CategoricalDistribution(levels) (order lost)  |
| Categorical(choices)          | CategoricalDistribution(choices)              |

Going back, IntDistribution with step 1 becomes Int; IntDistribution with
step > 1 and FloatDistribution with a step become Discrete over their exact
grid (at most `MAX_GRID_LEVELS` levels, else ValueError). So Optuna ->
optformer -> Optuna is exact; optformer -> Optuna -> optformer is exact
except that a Discrete of consecutive ints comes back as the equivalent Int,
and a Discrete with uneven levels comes back as an (unordered) Categorical,
because Optuna has no ordered distribution over arbitrary numbers.

`suggest_params(trial, space)` suggests a whole optformer SearchSpace on an
Optuna trial (so any Optuna sampler can tune it). Re-exported by
`optformer.integrations.optuna`.
"""

from __future__ import annotations

import decimal
from typing import Any, Mapping

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from optformer import search_space as ss

# A stepped distribution with more grid points than this is rejected (a Discrete
# of that many levels is slow to build and to tokenize; drop the step instead).
MAX_GRID_LEVELS = 10_000


# -- Search spaces ---------------------------------------------------------------


def _float_grid(name: str, low: float, high: float, step: float) -> tuple[float, ...]:
  """The levels low, low + step, ..., high, computed in decimal so 0.1 steps stay 0.1, 0.2, ..."""
  lo, st = decimal.Decimal(str(low)), decimal.Decimal(str(step))
  n = int((decimal.Decimal(str(high)) - lo) / st) + 1
  if n > MAX_GRID_LEVELS:
    raise ValueError(
        f"Parameter {name!r}: FloatDistribution(low={low}, high={high}, step={step}) has {n} grid points; "
        f"at most {MAX_GRID_LEVELS} are supported. Use step=None for a continuous parameter."
    )
  return tuple(float(lo + i * st) for i in range(n))


def _distribution_to_parameter(name: str, dist: BaseDistribution) -> ss.Parameter:
  if not isinstance(dist, BaseDistribution):
    raise TypeError(f"Parameter {name!r}: expected an optuna distribution, got {dist!r}.")
  if dist.single():
    raise ValueError(
        f"Parameter {name!r}: {dist!r} holds a single value; a search-space parameter needs at least 2."
    )
  if isinstance(dist, FloatDistribution):
    if dist.step is None:
      return ss.Float(name, dist.low, dist.high, log=dist.log)
    return ss.Discrete(name, _float_grid(name, dist.low, dist.high, dist.step))
  if isinstance(dist, IntDistribution):
    if dist.step == 1:
      return ss.Int(name, dist.low, dist.high, log=dist.log)
    n = (dist.high - dist.low) // dist.step + 1
    if n > MAX_GRID_LEVELS:
      raise ValueError(
          f"Parameter {name!r}: {dist!r} has {n} grid points; at most {MAX_GRID_LEVELS} are supported."
      )
    return ss.Discrete(name, tuple(range(dist.low, dist.high + 1, dist.step)))
  if isinstance(dist, CategoricalDistribution):
    return ss.Categorical(name, dist.choices)
  raise ValueError(
      f"Parameter {name!r}: unsupported distribution {dist!r}; expected FloatDistribution, "
      "IntDistribution or CategoricalDistribution."
  )


def from_distributions(dists: Mapping[str, BaseDistribution]) -> ss.SearchSpace:
  """The optformer SearchSpace of Optuna distributions, in the mapping's order.

  Args:
    dists: parameter name -> FloatDistribution, IntDistribution or
      CategoricalDistribution (what `optuna.Trial.suggest_*` records).

  Returns:
    A SearchSpace (see the module docstring for the mapping).

  Raises:
    ValueError: an empty mapping; a distribution with a single value (low ==
      high, one choice); a stepped distribution with more than
      MAX_GRID_LEVELS grid points; an unknown distribution class.
    TypeError: a value that is not an optuna distribution.
  """
  if not dists:
    raise ValueError("Cannot build a search space from an empty mapping of distributions.")
  return ss.SearchSpace([_distribution_to_parameter(name, d) for name, d in dists.items()])


def _stepped_distribution(values: tuple) -> BaseDistribution | None:
  """A stepped Int/FloatDistribution whose grid is exactly `values` (sorted), or None if uneven."""
  lo, hi, n = values[0], values[-1], len(values)
  if all(isinstance(v, int) for v in values):
    step = values[1] - lo
    return IntDistribution(lo, hi, step=step) if values == tuple(range(lo, hi + 1, step)) else None
  step = float(f"{(hi - lo) / (n - 1):.12g}")  # Rounded so that decimal steps (0.1) stay exact.
  dist = FloatDistribution(lo, hi, step=step)
  grid = _float_grid("", dist.low, dist.high, dist.step) if n <= MAX_GRID_LEVELS else ()
  # Each grid point must read as its own level: within 1e-9 of the smallest gap, Discrete's own rule for a value.
  tol = 1e-9 * min(b - a for a, b in zip(values, values[1:]))
  same = len(grid) == n and all(abs(a - b) <= tol for a, b in zip(grid, values))
  return dist if same else None


def _parameter_to_distribution(p: ss.Parameter) -> BaseDistribution:
  if isinstance(p, ss.Float):
    return FloatDistribution(p.low, p.high, log=p.log)
  if isinstance(p, ss.Int):
    return IntDistribution(p.low, p.high, log=p.log)
  if isinstance(p, ss.Discrete):
    return _stepped_distribution(p.values) or CategoricalDistribution(p.values)
  return CategoricalDistribution(p.choices)


def to_distributions(space: ss.SearchSpace) -> dict[str, BaseDistribution]:
  """Optuna distributions of an optformer SearchSpace: name -> distribution, in the space's order.

  Discrete levels that are evenly spaced become a stepped Int/FloatDistribution
  (ordered); other Discrete levels become a CategoricalDistribution of the
  numbers, so Optuna's samplers treat them as unordered (see module docstring).

  Raises:
    TypeError: `space` is not an optformer.SearchSpace.
  """
  if not isinstance(space, ss.SearchSpace):
    raise TypeError(f"space must be an optformer.SearchSpace, got {type(space).__name__}.")
  return {p.name: _parameter_to_distribution(p) for p in space}


def suggest_params(trial: optuna.trial.BaseTrial, space: ss.SearchSpace) -> dict[str, Any]:
  """Suggests every parameter of `space` on an Optuna trial (define-by-run) and returns the configuration.

  Each parameter is suggested with its `to_distributions` distribution
  (`suggest_float`, `suggest_int` or `suggest_categorical`), so any Optuna
  sampler can tune an optformer SearchSpace; the result validates in `space`.
  In a conditional space parents are suggested first and a parameter only
  when it is active (define-by-run branches), so the trial holds exactly
  its active parameters.

  Raises:
    TypeError: `space` is not an optformer.SearchSpace.
  """
  dists = to_distributions(space)
  out = {}
  for j in space.topological_order():
    name = space.parameters[j].name
    dist = dists[name]
    if not space.is_active(name, out):
      continue
    if isinstance(dist, FloatDistribution):
      out[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
    elif isinstance(dist, IntDistribution):
      out[name] = trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
    else:
      out[name] = trial.suggest_categorical(name, dist.choices)
  return space.validate(out)  # In the space's order.
