"""Define-by-run Optuna studies as conditional search spaces.

An Optuna objective suggests a parameter only in the branches that need it
(`svc_c` only when `classifier == "svc"`), and Optuna records no parent. The
sampler models such a study over the *union* of the parameters its
COMPLETE trials hold, as an optformer conditional `SearchSpace` whose
conditions are read off the trials:

  * a parameter that every trial holds is a root (always active);
  * any other parameter x gets a parent k: a Categorical, Int or Discrete
    parameter that every trial holding x holds too, that some trial holds
    without x (so k's value, not only its presence, decides), and whose
    values split the trials holding k: x is held exactly when k takes a
    value of `values` (Categorical: the levels seen with x, and the levels
    no trial took yet, whose branch is unknown: a sample that picks one
    holds x, so an objective that asks for x there gets the model's value,
    not the fallback's), or lies above (or below) a threshold
    (an ordered parent: `Condition(k, greater_than=...)` when the values
    holding x all exceed the others, so unseen levels follow the split;
    else the levels seen with x). Among several such k: a Categorical first,
    then the one that the fewest trials hold (the nearest ancestor), then
    by name;
  * a parameter without such a parent (held at random, or switched by a
    Float) is left out: the sampler's fallback samples it;
  * so each trial's active mask is exactly which parameters it holds, and
    a trial that holds a set the conditions do not produce (e.g. a FAIL
    trial that stopped half-way) is left out of the model's history.

A new trial's relative sample is a configuration of this space: it holds
the active parameters of the branch it picks, which the objective then
suggests; a parameter outside the union (no COMPLETE trial holds it yet)
goes to the fallback, and joins the union once a trial holding it completes.
The conditions are a hypothesis of the trials seen so far: more trials can
refute one, and the next sample reads them again.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial

from optformer import search_space as ss
from optformer.integrations.optuna_space import _distribution_to_parameter


def union_distributions(trials: Sequence[FrozenTrial]) -> dict[str, BaseDistribution]:
  """Every parameter some trial holds -> its distribution, by name; one whose distribution differs between trials
  (a changed range or kind) is left out, as Optuna's intersection search space leaves it out."""
  seen: dict[str, BaseDistribution] = {}
  changed: set[str] = set()
  for t in trials:
    for name, dist in t.distributions.items():
      if name in seen and seen[name] != dist:
        changed.add(name)
      seen.setdefault(name, dist)
  return {name: seen[name] for name in sorted(seen) if name not in changed}


def _condition(name: str, parent: ss.Parameter, inside: set, outside: set) -> ss.Condition:
  """The condition on `parent` that holds for its values `inside` and fails for those `outside` (disjoint).

  A Categorical parent's levels that no trial took (neither inside nor outside) are *unknown*: the
  condition holds for them too, so a sample that picks a new level holds the child, and the objective finds a
  value from the model if it asks for one (one it does not ask for is simply unused, and the told trial, which
  records what the objective suggested, teaches the condition for that level from then on).
  """
  if isinstance(parent, ss.Categorical):
    return ss.Condition(parent.name, [c for c in parent.choices if c not in outside])
  if min(inside) > max(outside):
    return ss.Condition(parent.name, greater_than=max(outside))
  if max(inside) < min(outside):
    return ss.Condition(parent.name, less_than=min(outside))
  return ss.Condition(parent.name, sorted(inside))


def infer_conditions(trials: Sequence[FrozenTrial], params: Mapping[str, ss.Parameter]) -> dict[str, ss.Condition | None]:
  """Each parameter's condition read off the trials (module docstring): None for a root; parameters without an
  explaining parent are absent from the result."""
  held = {n: [n in t.params for t in trials] for n in params}
  out: dict[str, ss.Condition | None] = {}
  for x in params:
    if all(held[x]):
      out[x] = None
      continue
    if not any(held[x]):
      continue
    options = []
    for k, parent in params.items():
      if k == x or isinstance(parent, ss.Float):
        continue
      if any(hx and not hk for hx, hk in zip(held[x], held[k])):
        continue  # x without k: k is no ancestor.
      inside = {t.params[k] for t, hx in zip(trials, held[x]) if hx}
      outside = {t.params[k] for t, hx, hk in zip(trials, held[x], held[k]) if hk and not hx}
      if not outside or inside & outside:
        continue
      options.append((not isinstance(parent, ss.Categorical), sum(held[k]), k, inside, outside))
    if options:
      _, _, k, inside, outside = min(options, key=lambda o: o[:3])
      out[x] = _condition(x, params[k], inside, outside)
  return out


def conditional_space(trials: Sequence[FrozenTrial], dists: Mapping[str, BaseDistribution]) -> ss.SearchSpace | None:
  """The conditional SearchSpace of `dists` (name -> distribution, in order) read off `trials` (module docstring);
  parameters without an explaining parent, or whose parent is left out, are left out. None if none is left.

  Raises:
    ValueError / TypeError: a distribution `from_distributions` rejects.
  """
  params = {n: _distribution_to_parameter(n, d) for n, d in dists.items()}
  conditions = infer_conditions(trials, params)
  keep = dict(conditions)
  while True:  # Drop children of dropped parents, level by level.
    orphans = [n for n, c in keep.items() if c is not None and c.parent not in keep]
    if not orphans:
      break
    for n in orphans:
      del keep[n]
  if not keep:
    return None
  return ss.SearchSpace([dataclasses.replace(params[n], condition=keep[n]) for n in dists if n in keep])


def params_in(space: ss.SearchSpace, params: Mapping) -> dict | None:
  """The parameters of `params` that `space` names, validated (exactly the active ones), or None if they are not a
  configuration of `space` (a value outside it, an active parameter missing, an inactive one held)."""
  try:
    return space.validate({name: params[name] for name in space.names if name in params})
  except (TypeError, ValueError):
    return None
