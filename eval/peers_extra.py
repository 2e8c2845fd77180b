"""SMAC3 and HEBO as optional peers: their ask/tell behind the `ask() -> params` / `tell(params, value)` of
eval/optimizers.py.

| name    | what                                                                                   |
| ------- | -------------------------------------------------------------------------------------- |
| "smac"  | SMAC3's HyperparameterOptimizationFacade (random-forest surrogate, log-EI, interleaved  |
|         | random configurations, Sobol initial design), on `to_configspace(space)`; conditions    |
|         | and forbidden clauses included                                                          |
| "hebo"  | HEBO (Cowen-Rivers et al., JAIR 2022: warped GP, MACE acquisition, NSGA-II), on a       |
|         | DesignSpace built from the space; conditional parameters are searched as if always      |
|         | active and dropped from the configuration when inactive                                 |

Neither library is a dependency of the test or eval installs; both come with the `peers` extra
(`pip install 'optformer[peers]'` and `pip install --no-deps hebo==0.3.6`: HEBO 0.3.6 pins numpy < 1.25 in its
metadata but runs on numpy 2, see docs/peers.md). Building either entry without its package raises
ImportError naming the package and the extra (`require`).
"""

from __future__ import annotations

import contextlib
import importlib
import math
import shutil
import tempfile
import warnings
from typing import Any, Mapping

import numpy as np

import optformer
from optformer import search_space as ss

PEERS = ("smac", "hebo")
# name -> (module to import, what to install).
_PACKAGES = {
    "smac": ("smac", "pip install 'optformer[peers]'  (SMAC3 >= 2.4)"),
    "hebo": ("hebo", "pip install 'optformer[peers]' && pip install --no-deps 'hebo==0.3.6'"),
}


def require(name: str):
  """Imports the package of peer `name` ("smac" or "hebo").

  Raises:
    ImportError: the package is not installed; the message names it and the `peers` extra.
    ValueError: `name` is not one of PEERS.
  """
  if name not in _PACKAGES:
    raise ValueError(f"Unknown peer {name!r}; expected one of {list(PEERS)}.")
  module, install = _PACKAGES[name]
  try:
    return importlib.import_module(module)
  except ImportError as e:
    raise ImportError(f"Optimizer {name!r} needs the package {module!r}, which is not installed ({e}). "
                      f"It comes with the optional 'peers' extra: {install}") from e


def make(name: str, space: optformer.SearchSpace, goal: str, seed: int):
  """A fresh peer `name` ("smac" or "hebo") on `space`, seeded by `seed`.

  Raises:
    ImportError: its package is not installed (`require`).
    ValueError: unknown name, a bad goal, or a space it does not support.
  """
  if name == "smac":
    return SmacOptimizer(space, goal, seed)
  if name == "hebo":
    return HeboOptimizer(space, goal, seed)
  raise ValueError(f"Unknown peer {name!r}; expected one of {list(PEERS)}.")


def _check_goal(goal: str) -> None:
  if goal not in ("minimize", "maximize"):
    raise ValueError(f"goal must be 'minimize' or 'maximize', got {goal!r}.")


class SmacOptimizer:
  """SMAC3's HPO facade (random forest + log-EI) through its ask/tell interface (`smac.ask()`, `smac.tell`).

  Args:
    space: the search space (converted with optformer.integrations.configspace.to_configspace; conditions and
      forbidden clauses carry over).
    goal: "minimize" or "maximize" (SMAC minimizes a cost: -value when maximizing).
    seed: seeds SMAC (scenario seed) and the ConfigurationSpace.
    num_trials: the planned study length T (>= 1): SMAC's Sobol initial design has min(10 D, T / 4)
      configurations (the facade's defaults); asking past T goes on as before.

  The facade's defaults otherwise: 20 % random configurations interleaved, and the random forest refit after
  every 8 suggestions (its ConfigSelector's retrain_after=8; the 7 between come from the last fit's local and
  random search). Each configuration is evaluated once (a deterministic scenario). A NaN or infinite value is
  told as a crashed trial. `tell` of a configuration that was not asked adds it to SMAC's run history.
  SMAC writes its run history to a temporary folder, removed when the optimizer is garbage-collected.

  Raises:
    ImportError: SMAC3 is not installed (`require`).
    ValueError: a bad goal or num_trials.
  """

  def __init__(self, space: optformer.SearchSpace, goal: str, seed: int = 0, num_trials: int = 50):
    require("smac")
    from smac import HyperparameterOptimizationFacade, Scenario

    from optformer.integrations.configspace import to_configspace

    _check_goal(goal)
    if num_trials < 1:
      raise ValueError(f"num_trials must be >= 1, got {num_trials}.")
    self.space, self.goal = space, goal
    self.cs = to_configspace(space, seed=seed)
    self._dir = tempfile.mkdtemp(prefix="smac3_")
    self._cleanup = _Cleanup(self._dir)
    scenario = Scenario(self.cs, deterministic=True, n_trials=int(num_trials), seed=int(seed),
                        output_directory=self._dir)
    self.smac = HyperparameterOptimizationFacade(scenario, _no_target_function, overwrite=True, logging_level=40)
    self._pending: list[tuple[dict, Any]] = []  # (params, TrialInfo) asked but not told.

  def ask(self) -> dict[str, Any]:
    """SMAC's next configuration, as params of the space."""
    from optformer.integrations.configspace import from_configuration

    info = self.smac.ask()
    params = self.space.validate(from_configuration(info.config))
    self._pending.append((params, info))
    return params

  def tell(self, params: Mapping[str, Any], value: float) -> None:
    """Tells SMAC the value of `params` (the pending trial with these params, else a new one)."""
    from smac.runhistory import StatusType, TrialInfo, TrialValue

    from optformer.integrations.configspace import to_configuration

    params = self.space.validate(params)
    info = None
    for i, (p, pending) in enumerate(self._pending):
      if p == params:
        info = pending
        del self._pending[i]
        break
    if info is None:
      info = TrialInfo(config=to_configuration(self.cs, params), seed=0)
    v = float(value)
    if math.isfinite(v):
      self.smac.tell(info, TrialValue(cost=v if self.goal == "minimize" else -v))
    else:
      self.smac.tell(info, TrialValue(cost=math.inf, status=StatusType.CRASHED))


def _no_target_function(config, seed: int = 0) -> float:
  """The facade's target function: never called, since trials run through ask/tell."""
  raise RuntimeError("SmacOptimizer runs trials through ask/tell; SMAC's optimize() is not used.")


class _Cleanup:
  """Removes a folder when garbage-collected (held by the optimizer that writes there)."""

  def __init__(self, path: str):
    self.path = path

  def __del__(self):
    shutil.rmtree(self.path, ignore_errors=True)


class HeboOptimizer:
  """HEBO (`suggest`/`observe`, default settings: GP with input warping, MACE, NSGA-II) behind ask/tell.

  The DesignSpace has one parameter per parameter of the space:

  | optformer                 | HEBO                                                     |
  | ------------------------- | -------------------------------------------------------- |
  | Float(low, high)          | "num" [low, high]                                        |
  | Float(low, high, log)     | "pow" (base 10) [low, high]                              |
  | Int(low, high)            | "int" [low, high]                                        |
  | Int(low, high, log)       | "pow_int" (base 10) [low, high] (low >= 1)                |
  | Discrete(levels)          | "int" level index [0, K-1] (ordered)                     |
  | Categorical, ordered      | "int" choice index [0, K-1]                              |
  | Categorical               | "cat" over the choice indices as strings                 |

  Conditional parameters are searched as if always active and left out of the configuration when inactive;
  spaces with forbidden clauses are not supported (HEBO cannot exclude them).

  Args:
    space: the search space.
    goal: "minimize" or "maximize" (HEBO minimizes: -value when maximizing).
    seed: seeds HEBO's Sobol initial design and, around each suggestion, NumPy's and torch's global generators
      (which HEBO's model fit and NSGA-II draw from); their states outside are left as they were.

  A NaN or infinite value is dropped by HEBO's `observe` (it models finite values only).

  Raises:
    ImportError: HEBO is not installed (`require`).
    ValueError: a bad goal, or a space with forbidden clauses.
  """

  def __init__(self, space: optformer.SearchSpace, goal: str, seed: int = 0):
    require("hebo")
    from hebo.design_space.design_space import DesignSpace
    from hebo.optimizers.hebo import HEBO
    from pymoo.config import Config

    Config.warnings["not_compiled"] = False  # pymoo's pure-Python fallback (HEBO pins pymoo 0.6.0) is the default.

    _check_goal(goal)
    if space.forbidden:
      raise ValueError(f"Optimizer 'hebo' does not support forbidden clauses; got {list(space.forbidden)}.")
    self.space, self.goal = space, goal
    self._rng = np.random.default_rng(seed)
    self.hebo = HEBO(DesignSpace().parse([_hebo_parameter(p) for p in space]), scramble_seed=int(seed))
    self._pending: list[tuple[dict, Any]] = []  # (params, one-row DataFrame) asked but not told.

  def ask(self) -> dict[str, Any]:
    """HEBO's next suggestion, as params of the space (inactive conditional parameters left out)."""
    with _seeded(int(self._rng.integers(2**31))), warnings.catch_warnings():
      # HEBO 0.3.6 and pymoo 0.6.0 call NumPy, pandas and torch functions deprecated since (thousands per study).
      warnings.simplefilter("ignore", DeprecationWarning)
      warnings.simplefilter("ignore", FutureWarning)
      rec = self.hebo.suggest(n_suggestions=1)
    row = rec.iloc[0].to_dict()
    values = {p.name: _from_hebo(p, row[p.name]) for p in self.space}
    params = self.space.validate({n: v for n, v in values.items() if self.space.is_active(n, values)})
    self._pending.append((params, rec))
    return params

  def tell(self, params: Mapping[str, Any], value: float) -> None:
    """Observes (params, value); a configuration that was not asked is observed with its inactive parameters
    at their middle (the unit value 0.5)."""
    params = self.space.validate(params)
    rec = None
    for i, (p, pending) in enumerate(self._pending):
      if p == params:
        rec = pending
        del self._pending[i]
        break
    if rec is None:
      import pandas as pd

      rec = pd.DataFrame([{p.name: _to_hebo(p, params.get(p.name, _middle(p))) for p in self.space}])
    v = float(value)
    self.hebo.observe(rec, np.array([[v if self.goal == "minimize" else -v]]))


def _middle(p) -> Any:
  """The value of parameter p at unit 0.5."""
  return p.from_unit(ss.INACTIVE_UNIT)


def _hebo_parameter(p) -> dict:
  """HEBO's DesignSpace entry of parameter p (see the HeboOptimizer table)."""
  if isinstance(p, ss.Float):
    if p.log:
      return {"name": p.name, "type": "pow", "lb": p.low, "ub": p.high, "base": 10}
    return {"name": p.name, "type": "num", "lb": p.low, "ub": p.high}
  if isinstance(p, ss.Int):
    if p.log:
      return {"name": p.name, "type": "pow_int", "lb": p.low, "ub": p.high, "base": 10}
    return {"name": p.name, "type": "int", "lb": p.low, "ub": p.high}
  if isinstance(p, ss.Discrete):
    return {"name": p.name, "type": "int", "lb": 0, "ub": len(p.values) - 1}
  if p.ordered:
    return {"name": p.name, "type": "int", "lb": 0, "ub": len(p.choices) - 1}
  return {"name": p.name, "type": "cat", "categories": [str(i) for i in range(len(p.choices))]}


def _from_hebo(p, v) -> Any:
  """The value of parameter p for HEBO's value v (clipped into the bounds: "pow" can overshoot by rounding)."""
  if isinstance(p, ss.Float):
    return float(np.clip(float(v), p.low, p.high))
  if isinstance(p, ss.Int):
    return int(np.clip(round(float(v)), p.low, p.high))
  if isinstance(p, ss.Discrete):
    return p.values[int(np.clip(round(float(v)), 0, len(p.values) - 1))]
  return p.choices[int(round(float(v)))] if p.ordered else p.choices[int(v)]


def _to_hebo(p, v) -> Any:
  """HEBO's value of parameter p's value v (inverse of _from_hebo)."""
  if isinstance(p, ss.Float):
    return float(v)
  if isinstance(p, ss.Int):
    return int(v)
  if isinstance(p, ss.Discrete):
    return int(np.argmin(np.abs(np.asarray(p.values, np.float64) - float(v))))
  i = list(p.choices).index(v)
  return i if p.ordered else str(i)


@contextlib.contextmanager
def _seeded(seed: int):
  """Seeds NumPy's and torch's global generators inside the block and restores their states after it."""
  import torch

  state = np.random.get_state()
  np.random.seed(seed)
  try:
    with torch.random.fork_rng():
      torch.manual_seed(seed)
      yield
  finally:
    np.random.set_state(state)
