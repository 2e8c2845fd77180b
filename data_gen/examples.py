"""Surrogate training examples drawn on the fly from the prior (model v2).

An *example* is one task from `data_gen.prior` (PriorConfig.v2(): up to 16
parameters of mixed kinds) with N evaluated configurations, of which the
first `n_context` are the context (objective visible) and the rest are
queries (objective to predict); the PFN training split (Müller et al.,
ICLR 2022, Sec. 3). Every example is a pure function of (seed, index), so
training is deterministic, resumable and shardable by index.

What an example adds to the GP task (ours, see ExampleConfig):
  * where the configurations lie: i.i.d. uniform over the valid values, or
    (probability `p_local`) a BO-like cloud: `num_seed` uniform points, then
    each further point with probability rho ~ U(0, rho_max) a perturbation
    of one of the seed points' best `num_top` (float/int: Gaussian in unit
    space with std ~ LogUniform(local_std_range); categorical: resampled
    with probability 0.2), else uniform. The points are then shuffled, so
    the context is a random subset;
  * conditional parameters (probability `p_conditional`, when the task has
    a categorical parameter): each other parameter becomes a child of it
    with probability 0.3, active only when the parent takes category 0; an
    inactive child has no effect on f (its latent input is held at 0.5) and
    reaches the model as "inactive";
  * failure regions (probability `p_failure`): a second, independent GP
    draw g with the task's lengthscales; configurations where g exceeds its
    (1 - q) quantile over the example's points are infeasible, q ~ U(q_range);
  * Gaussian observation noise of the task's noise variance.

Letters: B examples, N configurations, D = D_max slots, M features.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from optformer.data_gen import prior as prior_lib
from optformer.data_gen.prior import KIND_CATEGORICAL, KIND_FLOAT, KIND_ORDINAL, PriorConfig

STREAM_EXAMPLE = 7  # Sub-stream of a task key for the example's draws (prior.STREAM_* use 0..3).
SPLIT_IDS = {"train": 0, "validation": 1}  # Packed into the example key (see example_words).


@dataclasses.dataclass(frozen=True)
class ExampleConfig:
  """The distribution of training examples (every field is a knob of the prior)."""

  prior: PriorConfig = PriorConfig.v2()  # Task distribution.
  p_local: float = 0.5  # P(BO-like cloud of points) vs i.i.d. uniform.
  num_seed: int = 16  # Uniform seed points of a cloud.
  num_top: int = 4  # Best seed points that perturbations start from.
  rho_max: float = 0.9  # Cloud: fraction of perturbed points ~ U(0, rho_max).
  local_std_range: tuple = (0.01, 0.3)  # Perturbation std (unit space) ~ LogUniform.
  p_conditional: float = 0.2  # P(conditional structure | the task has a categorical parameter).
  p_child: float = 0.3  # P(a parameter is a child of the parent).
  p_failure: float = 0.2  # P(the task has failure regions).
  failure_fraction_range: tuple = (0.05, 0.4)  # Infeasible share of the points ~ U(range).
  failure_features: int = 128  # Random Fourier features of the failure GP g.

  @classmethod
  def tiny(cls) -> "ExampleConfig":
    return cls(prior=dataclasses.replace(PriorConfig.tiny(), int_levels_log_uniform=True, max_int_levels=50), num_seed=4, num_top=2)

  def to_json(self) -> dict:
    return dataclasses.asdict(self) | {"prior": self.prior.to_json()}

  @classmethod
  def from_json(cls, d: dict) -> "ExampleConfig":
    d = dict(d)
    tup = lambda v: tuple(v) if isinstance(v, list) else v
    return cls(prior=PriorConfig(**{k: tup(v) for k, v in d.pop("prior").items()}), **{k: tup(v) for k, v in d.items()})


class Examples(NamedTuple):
  """B examples (numpy arrays; inside jit, jax arrays)."""

  x: np.ndarray  # float32 [B, N, D]: unit-form values (prior.py); 0 where inactive or unused.
  active: np.ndarray  # bool [B, N, D]: the parameter is used and active in this configuration.
  kinds: np.ndarray  # int32 [B, D]: KIND_* per slot (0 unused).
  num_values: np.ndarray  # int32 [B, D]: levels (int) or categories, else 0.
  latent: np.ndarray  # float32 [B, N, D]: latent inputs z(x) of the GP (inactive: 0.5).
  f: np.ndarray  # float32 [B, N]: noiseless objective (to maximize).
  y: np.ndarray  # float32 [B, N]: noisy objective; NaN where infeasible.
  feasible: np.ndarray  # bool [B, N].


def example_words(seed: int, split: str, indices) -> np.ndarray:
  """uint32 [B, 2] key words of examples `indices` of `split` under global `seed`.

  Word 0 packs (seed, split, index >> 32), word 1 the index's low 32 bits,
  so every (seed < 2**20, split, index < 2**40) has its own key.

  Raises:
    ValueError: unknown split, seed outside [0, 2**20) or an index outside [0, 2**40).
  """
  if split not in SPLIT_IDS:
    raise ValueError(f"Unknown split {split!r}; expected one of {sorted(SPLIT_IDS)}.")
  if not 0 <= seed < 2**20:
    raise ValueError(f"seed must be in [0, 2**20), got {seed}.")
  idx = np.asarray(indices, np.int64).reshape(-1)
  if np.any((idx < 0) | (idx >= 2**40)):
    raise ValueError("Example indices must lie in [0, 2**40).")
  hi = (np.int64(seed) << 10) | (np.int64(SPLIT_IDS[split]) << 8) | (idx >> 32)
  return np.stack([hi, idx & 0xFFFFFFFF], -1).astype(np.uint32)


def sample_examples(config: ExampleConfig, words_Bx2, num_points: int) -> tuple[Examples, prior_lib.TaskBatch]:
  """Draws B examples of N = num_points configurations each (deterministic per key words)."""
  ex, task = _sample(jnp.asarray(words_Bx2), config, num_points)
  return Examples(*map(np.asarray, ex)), prior_lib.TaskBatch(*map(np.asarray, task))


@jax.jit(static_argnames=("config", "num_points"))
def _sample(words_Bx2, config, num_points):
  return jax.vmap(lambda w: _example_one(w, config, num_points))(words_Bx2)


def _snap(x_NxD, kinds_D, num_values_D):
  """Valid unit-form values of perturbed points (jnp version of prior.canonicalize)."""
  n = num_values_D.astype(jnp.float32)
  denom = jnp.maximum(n - 1, 1)
  ordinal = jnp.clip(jnp.round(x_NxD * denom), 0, denom) / denom
  return jnp.where(kinds_D == KIND_FLOAT, jnp.clip(x_NxD, 0.0, 1.0), jnp.where(kinds_D == KIND_ORDINAL, ordinal, x_NxD))


def _example_one(words_2, cfg: ExampleConfig, n: int):
  key = prior_lib.key_from_words(words_2)
  task = prior_lib._sample_one(jax.random.fold_in(key, prior_lib.STREAM_PRIOR), cfg.prior)
  ks = jax.random.split(jax.random.fold_in(key, STREAM_EXAMPLE), 8)
  d = cfg.prior.max_dims
  kinds, nv = task.kinds, task.num_values
  used = kinds != prior_lib.KIND_UNUSED
  s = jax.random.uniform(ks[0], (8,))  # Scalar draws.

  # Conditional structure: parent = a random categorical slot; children active iff parent == 0.
  is_cat = kinds == KIND_CATEGORICAL
  parent = jnp.argmax(jnp.where(is_cat, jax.random.uniform(ks[1], (d,)), -1.0))
  conditional = (s[0] < cfg.p_conditional) & is_cat.any()
  child = conditional & used & (jnp.arange(d) != parent) & (jax.random.uniform(ks[2], (d,)) < cfg.p_child)

  # Configurations: uniform, or a BO-like cloud around the best seed points.
  x_unif = prior_lib.sample_valid(ks[3], kinds, nv, n)
  def noiseless(x):
    z = prior_lib.latent_one(task, x)
    act = used & ~(child & (x[:, parent][:, None] != 0.0))
    z = jnp.where(act, z, 0.5)
    return prior_lib.evaluate_latent_one(task, z), z, act
  f_seed = noiseless(x_unif[: cfg.num_seed])[0]
  top = jnp.argsort(-f_seed)[: cfg.num_top]
  k_pick, k_std, k_gauss, k_cat, k_mix = jax.random.split(ks[4], 5)
  start = x_unif[top[jax.random.randint(k_pick, (n,), 0, cfg.num_top)]]  # [N, D]
  lo, hi = cfg.local_std_range
  std = jnp.exp(math.log(lo) + s[1] * math.log(hi / lo))
  moved = _snap(start + std * jax.random.normal(k_gauss, (n, d)), kinds, nv)
  resample_cat = is_cat & (jax.random.uniform(k_cat, (n, d)) < 0.2)
  moved = jnp.where(resample_cat, x_unif[::-1], moved)
  rho = jnp.where(s[2] < cfg.p_local, s[3] * cfg.rho_max, 0.0)
  local = (jnp.arange(n) >= cfg.num_seed) & (jax.random.uniform(k_mix, (n,)) < rho)
  x = jnp.where(local[:, None], moved, x_unif)
  x = x[jax.random.permutation(ks[5], n)]

  f, z, act = noiseless(x)
  x = jnp.where(act, x, 0.0)
  y = f + jnp.sqrt(task.noise_variance) * jax.random.normal(ks[6], (n,))

  # Failure regions: an independent GP draw g, infeasible above its (1 - q) quantile.
  m = cfg.failure_features
  kf = jax.random.split(ks[7], 4)
  g_omega = jax.random.normal(kf[0], (m, d)) * jnp.sqrt(3.0 / jnp.sum(jax.random.normal(kf[1], (m, 3)) ** 2, 1, keepdims=True))
  g_proj = z @ (g_omega * task.inv_lengthscale).T + 2 * jnp.pi * jax.random.uniform(kf[2], (m,))
  g = jnp.cos(g_proj) @ jax.random.normal(kf[3], (m,))
  qlo, qhi = cfg.failure_fraction_range
  frac = qlo + s[4] * (qhi - qlo)
  failing = (s[5] < cfg.p_failure) & (g > jnp.quantile(g, 1.0 - frac))
  feasible = ~failing
  y = jnp.where(feasible, y, jnp.nan)
  ex = Examples(x=x.astype(jnp.float32), active=act, kinds=kinds, num_values=nv, latent=z.astype(jnp.float32),
                f=f.astype(jnp.float32), y=y.astype(jnp.float32), feasible=feasible)
  return ex, task
