"""One prior task as a black-box objective over an `optformer.SearchSpace`.

`SyntheticTask` wraps a single task of a `TaskBatch` (see `data_gen.prior`
for the prior and the unit encoding). It bridges unit-form vectors
(float32 [D_max]) and parameter dicts, and estimates the optimum for regret
normalization. The objective is to be MAXIMIZED. Letters: N points,
D = D_max slots.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from optformer.data_gen import prior as prior_lib
from optformer.data_gen.prior import KIND_CATEGORICAL, KIND_FLOAT, KIND_ORDINAL, PriorConfig, TaskBatch


class SyntheticTask:
  """A single task drawn from the prior.

  Args:
    task: a `TaskBatch` without the leading B axis (e.g. `SyntheticTask.sample`
      or `SyntheticTask.from_batch`).
    seed: the int64 task seed it was drawn with (or None).
  """

  def __init__(self, task: TaskBatch, seed: int | None = None):
    if np.ndim(task.num_dims) != 0:
      raise ValueError(f"Expected one task (no batch axis), got num_dims of shape {np.shape(task.num_dims)}.")
    self.task = task
    self.seed = seed

  @classmethod
  def sample(cls, config: PriorConfig, seed: int) -> "SyntheticTask":
    """The task of int64 `seed` (the same task `generate` uses for that seed)."""
    return cls.from_batch(prior_lib.sample_tasks(config, [seed]), 0, seed)

  @classmethod
  def from_batch(cls, batch: TaskBatch, index: int, seed: int | None = None) -> "SyntheticTask":
    return cls(jax.tree.map(lambda v: v[index], batch), seed)

  @property
  def num_dims(self) -> int:
    return int(self.task.num_dims)

  @property
  def max_dims(self) -> int:
    return int(self.task.kinds.shape[-1])

  @property
  def kinds(self) -> np.ndarray:
    """int32 [D_max]: 0 unused, 1 float, 2 int (ordered finite), 3 categorical."""
    return np.asarray(self.task.kinds, np.int32)

  @property
  def num_values(self) -> np.ndarray:
    """int32 [D_max]: levels (int) or categories (categorical), 0 otherwise."""
    return np.asarray(self.task.num_values, np.int32)

  @property
  def hyperparameters(self) -> dict[str, Any]:
    """True kernel hyperparameters: lengthscale float32 [D_max] (irrelevant or
    unused slots = inf), outputscale and noise_variance (floats)."""
    return {"lengthscale": prior_lib.lengthscale(self.task),
            "outputscale": float(self.task.outputscale),
            "noise_variance": float(self.task.noise_variance)}

  def latent(self, x_unit) -> np.ndarray:
    """float32 [N, D_max]: latent inputs z of unit-form x float [N, D_max]."""
    return np.asarray(_latent(self.task, jnp.asarray(_as_points(x_unit, self.max_dims))))

  def evaluate(self, x_unit, noisy: bool = False, rng: np.random.Generator | None = None) -> np.ndarray:
    """float32 [N]: f at unit-form x float [N, D_max] (larger is better).

    With `noisy`, adds N(0, noise_variance) noise drawn from `rng` (a numpy
    Generator; a fresh unseeded one if None).
    """
    f = np.asarray(_evaluate(self.task, jnp.asarray(_as_points(x_unit, self.max_dims))))
    if noisy:
      rng = rng if rng is not None else np.random.default_rng()
      f = f + np.sqrt(float(self.task.noise_variance)) * rng.standard_normal(f.shape)
    return f.astype(np.float32)

  @functools.cached_property
  def space(self):
    """`optformer.SearchSpace`: x{i} is Float(0, 1), Int(0, n - 1) or Categorical(c0..c{K-1})."""
    from optformer.search_space import Categorical, Float, Int, SearchSpace  # Lazy: optional dependency.
    params = []
    for i, (kind, n) in enumerate(zip(self.kinds[:self.num_dims], self.num_values[:self.num_dims])):
      if kind == KIND_FLOAT:
        params.append(Float(f"x{i}", 0.0, 1.0))
      elif kind == KIND_ORDINAL:
        params.append(Int(f"x{i}", 0, int(n) - 1))
      else:
        params.append(Categorical(f"x{i}", [f"c{k}" for k in range(int(n))]))
    return SearchSpace(params)

  def to_unit(self, params: Mapping[str, Any]) -> np.ndarray:
    """float32 [D_max]: unit form of a configuration dict of `self.space` (unused slots 0)."""
    out = np.zeros(self.max_dims, np.float32)
    out[:self.num_dims] = self.space.to_unit(params)
    return out

  def from_unit(self, x_unit) -> dict[str, Any]:
    """Configuration dict of a unit-form float [D_max] vector (snapped to valid values)."""
    x = prior_lib.canonicalize(np.asarray(x_unit, np.float32).reshape(1, 1, -1),
                               self.kinds[None], self.num_values[None])[0, 0]
    return self.space.from_unit(x[:self.num_dims].astype(np.float64))

  def optimum_estimate(self, num_random: int = 16384, num_rounds: int = 30, num_starts: int = 8,
                       num_neighbours: int = 256, seed: int = 0) -> float:
    """An estimate of max_x f(x) (noiseless), for normalized regret; cached per arguments.

    The best of `num_random` uniform valid points, then `num_rounds` rounds of
    local search from the `num_starts` best, each round trying
    `num_neighbours` perturbations per start (float: Gaussian steps whose
    std shrinks from 0.1 to 0.001; int: +-1 level; categorical: random
    category). A lower bound on the true max of f.
    """
    return self.optimum_estimate_with_x(num_random, num_rounds, num_starts, num_neighbours, seed)[0]

  def optimum_estimate_with_x(self, num_random: int = 16384, num_rounds: int = 30, num_starts: int = 8,
                              num_neighbours: int = 256, seed: int = 0) -> tuple[float, np.ndarray]:
    """(estimate of max f, its argmax x float32 [D_max] in unit form); see `optimum_estimate`."""
    args = (num_random, num_rounds, num_starts, num_neighbours, seed)
    cache = self.__dict__.setdefault("_optimum_cache", {})
    if args not in cache:
      _, best_x = _optimize(self.task, jax.random.key(seed), *args[:4])
      x = prior_lib.canonicalize(np.asarray(best_x)[None, None], self.kinds[None], self.num_values[None])[0, 0]
      cache[args] = (float(self.evaluate(x[None])[0]), x)
    f, x = cache[args]
    return f, x.copy()

  def __repr__(self) -> str:
    kinds = "".join(".fic"[k] for k in self.kinds[:self.num_dims])
    return f"SyntheticTask(seed={self.seed}, kinds={kinds!r}, num_values={self.num_values[:self.num_dims].tolist()})"


def _as_points(x_unit, max_dims: int) -> np.ndarray:
  x = np.asarray(x_unit, np.float32)
  if x.ndim != 2 or x.shape[1] != max_dims:
    raise ValueError(f"Expected unit-form points of shape [N, {max_dims}], got {x.shape}.")
  return x


_latent = jax.jit(prior_lib.latent_one)
_evaluate = jax.jit(prior_lib.evaluate_one)


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _optimize(task: TaskBatch, key, num_random, num_rounds, num_starts, num_neighbours):
  """Random search then shrinking-step local search; returns (f, x [D])."""
  k_rand, k_loop = jax.random.split(key)
  x_NxD = prior_lib.sample_valid(k_rand, task.kinds, task.num_values, num_random)
  f_N = prior_lib.evaluate_one(task, x_NxD)
  top = jnp.argsort(-f_N)[:num_starts]
  d = task.kinds.shape[-1]
  n = jnp.maximum(task.num_values, 1)
  denom = jnp.maximum(n - 1, 1).astype(jnp.float32)

  def round_(carry, r):
    x_SxD, f_S = carry
    ks = jax.random.split(jax.random.fold_in(k_loop, r), 5)
    std = 0.1 * (0.01 ** (r / max(num_rounds - 1, 1)))
    shape = (num_starts, num_neighbours, d)
    base = x_SxD[:, None, :]
    change = jax.random.bernoulli(ks[0], 0.3, shape)
    x_float = jnp.clip(base + std * jax.random.normal(ks[1], shape), 0.0, 1.0)
    step = jnp.where(jax.random.bernoulli(ks[2], 0.5, shape), 1.0, -1.0)
    x_int = jnp.clip(jnp.round(base * denom) + step, 0.0, denom) / denom
    x_cat = prior_lib.quantize(jax.random.uniform(ks[3], shape), task.kinds, task.num_values)
    new = jnp.where(task.kinds == KIND_FLOAT, x_float,
                    jnp.where(task.kinds == KIND_ORDINAL, x_int,
                              jnp.where(task.kinds == KIND_CATEGORICAL, x_cat, 0.0)))
    cand = jnp.where(change, new, base).reshape(-1, d)
    f_c = prior_lib.evaluate_one(task, cand).reshape(num_starts, num_neighbours)
    j = jnp.argmax(f_c, axis=1)
    better = f_c[jnp.arange(num_starts), j] > f_S
    x_SxD = jnp.where(better[:, None], cand.reshape(num_starts, num_neighbours, d)[jnp.arange(num_starts), j], x_SxD)
    return (x_SxD, jnp.maximum(f_S, f_c[jnp.arange(num_starts), j])), None

  (x_SxD, f_S), _ = jax.lax.scan(round_, (x_NxD[top], f_N[top]), jnp.arange(num_rounds))
  i = jnp.argmax(f_S)
  return f_S[i], x_SxD[i]
