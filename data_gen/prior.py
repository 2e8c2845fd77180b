"""The GP prior over objective functions ("HEBO+"-style) with mixed parameter kinds.

A *task* is one objective function f over a search space of D <= D_max
parameters (slots D..D_max-1 are padding). Everything here is batched over
tasks: a `TaskBatch` holds B tasks as arrays with a leading B axis, and
`evaluate(batch, x_BxNxD)` evaluates all of them at once under `jit`.

Letters: B tasks, N points, D = D_max parameter slots, M random Fourier
features, K = max_categories.

The prior follows PFNs4BO's HEBO+ prior (Müller et al., "PFNs4BO: In-Context
Learning for Bayesian Optimization", ICML 2023; `config_heboplus` in the
README of github.com/automl/PFNs4BO and `get_model` in
github.com/automl/PFNs `pfns/priors/hebo_prior.py`): a zero-mean GP with a
Matérn-3/2 ARD kernel k(z, z') = s * (1 + sqrt(3) r) exp(-sqrt(3) r),
r = || (z - z') / lengthscale ||, with gpytorch's Gamma(concentration, rate)
parametrization (mean = concentration / rate):

* lengthscale_d ~ Gamma(1.2107, rate 1.5212)  (mean 0.80),
* outputscale s ~ Gamma(0.8452, rate 0.3994)  (mean 2.12),
* noise variance ~ LogNormal(-4.63, 0.5)      (median 0.0098),
  or, with probability p_noiseless (0 in HEBO+; model v3's noise mixture),
  ~ LogNormal(noiseless_log_mean, noiseless_log_std^2) (default median 1e-6: near-noiseless),
* each dimension unused (irrelevant) with probability 0.3, at least one kept.

Additions for HPO search spaces (ours): int and categorical parameters, and
Kumaraswamy-CDF input warping z = 1 - (1 - x^a)^b (as in HEBO, Cowen-Rivers
et al., JAIR 2022; the optional `Warp` of hebo_prior.py draws a, b ~
LogNormal(0, 0.75), which we reuse; HEBO+ itself trains without warping),
applied to each float/int parameter with probability p_warp = 0.5.

Functions are drawn with random Fourier features (Rahimi & Recht, "Random
Features for Large-Scale Kernel Machines", NeurIPS 2007), so a task can be
evaluated anywhere:

  f(x) = sqrt(2 s / M) sum_m w_m cos(omega_m . z(x) + b_m),
  w_m ~ N(0, 1), b_m ~ U[0, 2 pi), omega_m = g_m / lengthscale * sqrt(3 / u_m),
  g_m ~ N(0, I_D), u_m ~ chi^2_3,

i.e. omega_m is multivariate Student-t with 2 nu = 3 degrees of freedom and
scale 1 / lengthscale, the spectral density of Matérn-3/2 (Rasmussen &
Williams 2006, eq. 4.15). Then Cov[f(x), f(x')] -> k(z, z') as M grows.
The objective is to be MAXIMIZED.

Unit encoding of a configuration x (float32 [D]): a float parameter is its
value in [0, 1]; int level i of n is i / (n - 1); categorical index k is the
float k (not divided); unused slots are 0. The latent input z(x) in [0, 1]
is the Kumaraswamy-warped unit value for float/int, and a per-category
random position for categorical (so category order carries no meaning).

Randomness: JAX (threefry) PRNG keys derived from an int64 task seed only
(`task_keys`), so task i is the same whatever batch it is sampled in.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# Parameter kind codes, one set for the prior and users' search spaces (KIND_ORDINAL: ints and discrete values,
# ordered, finitely many levels).
from optformer.search_space import KIND_CATEGORICAL, KIND_FLOAT, KIND_ORDINAL, KIND_UNUSED


# Task seed layout: seed * 2**32 + split offset + index (see `task_seeds`).
SPLIT_OFFSETS = {"train": 0, "validation": 2**31}

# Sub-streams of a task's PRNG key (`jax.random.fold_in(task_key, stream)`).
STREAM_PRIOR, STREAM_NOISE, STREAM_ALGORITHM, STREAM_POLICY = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class PriorConfig:
  """Hyperpriors of the synthetic task distribution (defaults: HEBO+, D_max 8)."""

  max_dims: int = 8  # D_max: parameter slots; a task has D ~ U{min_dims..max_dims}.
  min_dims: int = 1  # Smallest number of parameters of a task.
  p_irrelevant: float = 0.3  # Probability that a parameter has no effect on f.
  lengthscale_concentration: float = 1.2106559584074301  # Gamma shape (HEBO+).
  lengthscale_rate: float = 1.5212245992840594  # Gamma rate (HEBO+).
  outputscale_concentration: float = 0.8452312502679863  # Gamma shape (HEBO+).
  outputscale_rate: float = 0.3993553245745406  # Gamma rate (HEBO+).
  noise_log_mean: float = -4.63  # Mean of log(noise variance) (HEBO+).
  noise_log_std: float = 0.5  # Std of log(noise variance) (HEBO+).
  # Probability that a task is near-noiseless: its log(noise variance) ~ N(noiseless_log_mean, noiseless_log_std^2)
  # instead (a two-component noise mixture, model v3); 0: HEBO+'s single component, the same tasks as before.
  p_noiseless: float = 0.0
  noiseless_log_mean: float = -13.8  # Mean of log(noise variance) of a near-noiseless task (exp(-13.8) = 1e-6).
  noiseless_log_std: float = 1.0  # Std of log(noise variance) of a near-noiseless task.
  p_warp: float = 0.5  # Probability that a float/int parameter is Kumaraswamy-warped.
  warp_log_std: float = 0.75  # log(a), log(b) ~ N(0, warp_log_std^2); HEBO Warp default.
  kind_probs: tuple[float, float, float] = (0.6, 0.25, 0.15)  # P(float), P(int), P(categorical).
  max_int_levels: int = 20  # Int parameters have n ~ U{2..max_int_levels} levels.
  int_levels_log_uniform: bool = False  # n ~ round(LogUniform(2, max_int_levels)) instead (wide ints, model v2).
  max_categories: int = 6  # K: categorical parameters have U{2..K} categories.
  num_features: int = 512  # M: random Fourier features per task.
  # Function families beside the GP draws (data_gen/families.py; used by data_gen/examples.py): the share of tasks
  # whose objective is a BBOB-like shape (rotated, ill-conditioned, multimodal) ...
  p_bbob: float = 0.0
  p_hpo: float = 0.0  # ... or an HPO-like shape (few important parameters, log-scale sensitivity, plateaus).
  p_family_residual: float = 0.5  # P(a BBOB-/HPO-like task also adds a scaled GP residual, its own GP draw).

  def __post_init__(self):
    if not 1 <= self.min_dims <= self.max_dims:
      raise ValueError(f"Need 1 <= min_dims <= max_dims, got {self.min_dims}, {self.max_dims}.")
    if len(self.kind_probs) != 3 or min(self.kind_probs) < 0 or not math.isclose(sum(self.kind_probs), 1.0):
      raise ValueError(f"kind_probs must be 3 non-negative numbers summing to 1, got {self.kind_probs}.")
    if self.max_int_levels < 2 or self.max_categories < 2:
      raise ValueError("max_int_levels and max_categories must be >= 2.")
    from optformer.data_gen import families  # Lazy: families imports this module.
    families.check_config(self)
    if not 0.0 <= self.p_noiseless <= 1.0:
      raise ValueError(f"p_noiseless must be a probability in [0, 1], got {self.p_noiseless}.")
    if self.noise_log_std < 0 or self.noiseless_log_std < 0:
      raise ValueError(f"noise_log_std and noiseless_log_std must be >= 0, got {self.noise_log_std}, "
                       f"{self.noiseless_log_std}.")

  @classmethod
  def tiny(cls) -> "PriorConfig":
    """A small prior for tests: D_max 3, 128 features."""
    return cls(max_dims=3, max_int_levels=6, max_categories=4, num_features=128)

  @classmethod
  def v2(cls) -> "PriorConfig":
    """Model v2's prior: up to 16 parameters, ints with up to 1000 levels, up to 8 categories."""
    return cls(max_dims=16, max_int_levels=1000, int_levels_log_uniform=True, max_categories=8)

  def to_json(self) -> dict:
    d = dataclasses.asdict(self)
    if not (self.p_bbob or self.p_hpo):
      del d["p_bbob"], d["p_hpo"], d["p_family_residual"]  # Configs of runs from before the families stay equal.
    if not self.p_noiseless:  # No noise mixture: configs of runs from before it stay equal.
      del d["p_noiseless"], d["noiseless_log_mean"], d["noiseless_log_std"]
    return d


class TaskBatch(NamedTuple):
  """B tasks drawn from the prior (a single task when the B axis is absent).

  `sample_tasks` returns numpy arrays (host memory); inside jitted code the
  fields are jax arrays. Functions ending in `_one` take a single task.
  """

  num_dims: jax.Array  # int32 [B]: D, number of used slots (the first D).
  kinds: jax.Array  # int32 [B, D_max]: KIND_* code per slot, 0 for unused.
  num_values: jax.Array  # int32 [B, D_max]: levels (int) / categories (categorical), else 0.
  inv_lengthscale: jax.Array  # float32 [B, D_max]: 1 / lengthscale; 0 = irrelevant or unused.
  outputscale: jax.Array  # float32 [B]: kernel variance s.
  noise_variance: jax.Array  # float32 [B]: variance of the Gaussian observation noise.
  warp_a: jax.Array  # float32 [B, D_max]: Kumaraswamy a (1 = no warping).
  warp_b: jax.Array  # float32 [B, D_max]: Kumaraswamy b (1 = no warping).
  category_latent: jax.Array  # float32 [B, D_max, K]: latent position in [0, 1) of category k.
  rff_omega: jax.Array  # float32 [B, M, D_max]: Student-t(3) draws, NOT yet divided by lengthscale.
  rff_phase: jax.Array  # float32 [B, M]: b_m in [0, 2 pi).
  rff_weight: jax.Array  # float32 [B, M]: w_m ~ N(0, 1).


def task_seeds(seed: int, split: str, start: int, count: int) -> np.ndarray:
  """int64 [count]: seeds of tasks start..start+count-1 of `split` under global `seed`.

  task_seed = seed * 2**32 + SPLIT_OFFSETS[split] + index, so train
  (index < 2**31) and validation seeds never overlap, for any global seed.

  Raises:
    ValueError: unknown split, seed outside [0, 2**31), or index out of range.
  """
  if split not in SPLIT_OFFSETS:
    raise ValueError(f"Unknown split {split!r}; expected one of {sorted(SPLIT_OFFSETS)}.")
  if not 0 <= seed < 2**31:
    raise ValueError(f"seed must be in [0, 2**31), got {seed}.")
  if start < 0 or count < 0 or start + count > 2**31:
    raise ValueError(f"Task indices [{start}, {start + count}) must lie in [0, 2**31).")
  return np.int64(seed) * 2**32 + SPLIT_OFFSETS[split] + np.arange(start, start + count, dtype=np.int64)


def seed_words(seeds) -> np.ndarray:
  """uint32 [B, 2]: (high, low) 32-bit words of int64 task seeds [B]."""
  seeds = np.asarray(seeds, dtype=np.int64).reshape(-1).astype(np.uint64)
  return np.stack([(seeds >> np.uint64(32)), seeds & np.uint64(0xFFFFFFFF)], -1).astype(np.uint32)


def key_from_words(words_2):
  """The PRNG key of one task: fold_in(fold_in(key(0), high), low). Use inside jit/vmap."""
  return jax.random.fold_in(jax.random.fold_in(jax.random.key(0), words_2[0]), words_2[1])


def task_keys(seeds) -> jax.Array:
  """PRNG keys [B] of int64 task seeds [B]; stream s of a task is fold_in(key, s)."""
  return _keys(seed_words(seeds))


@jax.jit
def _keys(words_Bx2):
  return jax.vmap(key_from_words)(words_Bx2)


def pad_size(n: int, minimum: int = 16) -> int:
  """The padded batch size for n items: the next power of two, at least `minimum`."""
  return max(minimum, 1 << max(0, n - 1).bit_length())


def _uniform_int(u, low, high):
  """Integers uniform in [low, high) from u ~ U[0, 1) (low/high may be arrays)."""
  return jnp.minimum(low + jnp.floor(u * (high - low)).astype(jnp.int32), high - 1)


def _sample_one(key, cfg: PriorConfig) -> TaskBatch:
  """One task from the prior; see the module docstring for the distributions.

  Draws few, large random blocks (4 PRNG calls): each threefry call costs
  compile time, and this function is compiled for every batch shape.
  """
  d, m, k = cfg.max_dims, cfg.num_features, cfg.max_categories
  k_u, k_n, k_g, k_rff = jax.random.split(key, 4)
  u = jax.random.uniform(k_u, (6 + k, d))  # Per-slot uniforms; rows 6.. = category positions.
  n = jax.random.normal(k_n, (3, d))  # Rows: log warp a, log warp b, [0, 0] log noise.
  slot = jnp.arange(d)
  num_dims = _uniform_int(u[0, 0], cfg.min_dims, d + 1)
  active = slot < num_dims
  p_float, p_int, _ = cfg.kind_probs
  kind = 1 + (u[2] >= p_float).astype(jnp.int32) + (u[2] >= p_float + p_int).astype(jnp.int32)
  kinds = jnp.where(active, kind, KIND_UNUSED).astype(jnp.int32)
  if cfg.int_levels_log_uniform:
    n_int = jnp.round(jnp.exp(u[3] * math.log(cfg.max_int_levels / 2.0)) * 2.0).astype(jnp.int32)
  else:
    n_int = _uniform_int(u[3], 2, cfg.max_int_levels + 1)
  n_cat = _uniform_int(u[4], 2, k + 1)
  num_values = jnp.where(kinds == KIND_ORDINAL, n_int, jnp.where(kinds == KIND_CATEGORICAL, n_cat, 0))
  kernel = kernel_from_draws(cfg, kinds, u[1], u[0, 1], u[5], u[6:], n, k_g, noiseless_key(cfg, k_n))
  # RFF block: d columns g ~ N(0, I), 3 columns whose squares sum to chi^2_3, 1 column w.
  g = jax.random.normal(k_rff, (m, d + 4))
  chi2 = jnp.sum(g[:, d:d + 3] ** 2, axis=1, keepdims=True)
  phase = 2 * jnp.pi * jax.random.uniform(jax.random.fold_in(k_rff, 1), (m,))
  return kernel._replace(
      num_dims=num_dims.astype(jnp.int32),
      num_values=num_values.astype(jnp.int32),
      rff_omega=g[:, :d] * jnp.sqrt(3.0 / chi2),
      rff_phase=phase,
      rff_weight=g[:, d + 3],
  )


def noiseless_key(cfg: PriorConfig, key_normal):
  """The key of a task's noise-component draw (`kernel_from_draws`): fold_in(key_normal, 1); None when
  p_noiseless is 0, so the HEBO+ prior makes no extra draw (and no extra compile)."""
  return jax.random.fold_in(key_normal, 1) if cfg.p_noiseless > 0 else None


def kernel_from_draws(cfg: PriorConfig, kinds_D, u_relevant_D, u_forced, u_warp_D, u_category_KxD, normal_3xD,
                      key_gamma, key_noiseless=None) -> TaskBatch:
  """The kernel hyperparameters of one task with search space `kinds_D`, from its raw draws.

  Each used slot is irrelevant when u_relevant < p_irrelevant, one forced
  relevant (uniform by u_forced) if none is; lengthscales and the outputscale from one Gamma call of
  key_gamma; log noise variance mean + std * normal[2, 0] of the HEBO+ component, or of the near-noiseless one
  when a uniform of key_noiseless (`noiseless_key`; needed when p_noiseless > 0) is below p_noiseless;
  float/int slots warped when u_warp < p_warp with
  log a, log b from normal[:2]; category positions u_category. Shared by `_sample_one` and
  training/gp_reference.py (which redraws kernels for a fixed search space), so both follow one
  hyperprior. Returns a TaskBatch with num_values zero and empty random features (callers fill them).
  """
  d = kinds_D.shape[0]
  slot = jnp.arange(d)
  used = kinds_D != KIND_UNUSED
  relevant = used & (u_relevant_D >= cfg.p_irrelevant)
  forced = _uniform_int(u_forced, 0, jnp.sum(used))  # Keep >= 1 relevant slot.
  relevant = relevant | ((slot == forced) & ~relevant.any())
  # One gamma call (a rejection loop, slow to compile) for d lengthscales and the outputscale.
  conc = jnp.array([cfg.lengthscale_concentration] * d + [cfg.outputscale_concentration])
  rate = jnp.array([cfg.lengthscale_rate] * d + [cfg.outputscale_rate])
  gam = jax.random.gamma(key_gamma, conc) / rate
  warped = (u_warp_D < cfg.p_warp) & ((kinds_D == KIND_FLOAT) | (kinds_D == KIND_ORDINAL))
  a_b = jnp.exp(cfg.warp_log_std * normal_3xD[:2])
  log_noise = cfg.noise_log_mean + cfg.noise_log_std * normal_3xD[2, 0]
  if cfg.p_noiseless > 0:
    if key_noiseless is None:
      raise ValueError("kernel_from_draws: p_noiseless > 0 needs key_noiseless (prior.noiseless_key).")
    quiet = jax.random.uniform(key_noiseless) < cfg.p_noiseless
    log_noise = jnp.where(quiet, cfg.noiseless_log_mean + cfg.noiseless_log_std * normal_3xD[2, 0], log_noise)
  return TaskBatch(
      num_dims=jnp.sum(used).astype(jnp.int32),
      kinds=kinds_D,
      num_values=jnp.zeros(d, jnp.int32),
      inv_lengthscale=jnp.where(relevant, 1.0 / gam[:d], 0.0).astype(jnp.float32),
      outputscale=gam[d].astype(jnp.float32),
      noise_variance=jnp.exp(log_noise).astype(jnp.float32),
      warp_a=jnp.where(warped, a_b[0], 1.0),
      warp_b=jnp.where(warped, a_b[1], 1.0),
      category_latent=u_category_KxD.T,  # [d, k]
      rff_omega=jnp.zeros((0, d)),
      rff_phase=jnp.zeros((0,)),
      rff_weight=jnp.zeros((0,)),
  )


def sample_tasks(config: PriorConfig, seeds) -> TaskBatch:
  """Draws B tasks, one per int64 task seed [B] (deterministic per seed).

  Returns a `TaskBatch` of numpy arrays (host memory; jitted functions take
  them as they are). Batches are padded to `pad_size(B)` inside, so few
  shapes get compiled.
  """
  words = seed_words(seeds)
  n = len(words)
  padded = np.concatenate([words, np.zeros((pad_size(n) - n, 2), np.uint32)])
  return TaskBatch(*(np.asarray(v)[:n] for v in _sample_batch(padded, config)))


@jax.jit(static_argnames="config")
def _sample_batch(words_Bx2, config):
  return jax.vmap(lambda w: _sample_one(jax.random.fold_in(key_from_words(w), STREAM_PRIOR), config))(words_Bx2)


def quantize(u_NxD, kinds_D, num_values_D):
  """Maps uniform u in [0, 1) to valid unit values float32 [N, D] of each kind.

  float: u; int: level floor(u n) / (n - 1); categorical: floor(u K) as a
  float; unused: 0. Each level / category gets probability 1 / n.
  """
  n = jnp.maximum(num_values_D, 1)
  level = jnp.minimum(jnp.floor(u_NxD * n), n - 1).astype(jnp.float32)
  ordinal = level / jnp.maximum(n - 1, 1).astype(jnp.float32)
  return jnp.where(kinds_D == KIND_FLOAT, u_NxD,
                   jnp.where(kinds_D == KIND_ORDINAL, ordinal,
                             jnp.where(kinds_D == KIND_CATEGORICAL, level, 0.0))).astype(jnp.float32)


def sample_valid(key, kinds_D, num_values_D, num: int):
  """float32 [num, D]: configurations uniform over each parameter's valid values."""
  return quantize(jax.random.uniform(key, (num, kinds_D.shape[-1])), kinds_D, num_values_D)


def latent_one(task: TaskBatch, x_NxD):
  """float32 [N, D]: latent inputs z(x) of one task (see the module docstring).

  float/int: Kumaraswamy CDF 1 - (1 - x^a)^b (= x when a = b = 1); categorical:
  `category_latent[d, round(x_d)]`; unused slots: 0.
  """
  x = jnp.clip(x_NxD, 0.0, None)
  warped = 1.0 - (1.0 - jnp.minimum(x, 1.0) ** task.warp_a) ** task.warp_b
  ordered = jnp.where((task.warp_a == 1.0) & (task.warp_b == 1.0), jnp.minimum(x, 1.0), warped)
  idx = jnp.clip(jnp.round(x).astype(jnp.int32), 0, task.category_latent.shape[-1] - 1)  # [N, D]
  cat = jnp.take_along_axis(task.category_latent[None], idx[..., None], axis=-1)[..., 0]
  is_ordered = (task.kinds == KIND_FLOAT) | (task.kinds == KIND_ORDINAL)
  return jnp.where(is_ordered, ordered, jnp.where(task.kinds == KIND_CATEGORICAL, cat, 0.0))


def evaluate_latent_one(task: TaskBatch, z_NxD):
  """float32 [N]: noiseless f at latent inputs z (random Fourier features)."""
  omega_MxD = task.rff_omega * task.inv_lengthscale  # Irrelevant dims: exactly 0.
  proj_NxM = z_NxD @ omega_MxD.T + task.rff_phase
  m = task.rff_weight.shape[-1]
  return jnp.sqrt(2.0 * task.outputscale / m) * (jnp.cos(proj_NxM) @ task.rff_weight)


def evaluate_one(task: TaskBatch, x_NxD):
  """float32 [N]: noiseless f of one task at unit-form configurations x."""
  return evaluate_latent_one(task, latent_one(task, x_NxD))


@jax.jit
def latent(batch: TaskBatch, x_BxNxD):
  """float32 [B, N, D]: latent inputs of B tasks."""
  return jax.vmap(latent_one)(batch, x_BxNxD)


@jax.jit
def evaluate(batch: TaskBatch, x_BxNxD):
  """float32 [B, N]: noiseless objective values (to maximize) of B tasks."""
  return jax.vmap(evaluate_one)(batch, x_BxNxD)


def lengthscale(batch: TaskBatch, irrelevant_value: float = np.inf) -> np.ndarray:
  """float32 [..., D_max]: lengthscales; irrelevant and unused slots = `irrelevant_value`."""
  inv = np.asarray(batch.inv_lengthscale)
  with np.errstate(divide="ignore"):
    return np.where(inv > 0, 1.0 / np.where(inv > 0, inv, 1.0), irrelevant_value).astype(np.float32)


def canonicalize(x_BxTxD, kinds_BxD, num_values_BxD) -> np.ndarray:
  """float32 [B, T, D]: snaps unit-form configurations to exact valid values (numpy).

  float: clipped to [0, 1]; int: float32(i) / float32(n - 1) with i the
  nearest level (IEEE division, which XLA's CPU division is not exactly);
  categorical: the nearest index in [0, K); unused: 0.
  """
  x = np.asarray(x_BxTxD, dtype=np.float32)
  k = np.asarray(kinds_BxD)[:, None, :]
  n = np.asarray(num_values_BxD)[:, None, :]
  denom = np.maximum(n - 1, 1).astype(np.float32)
  ordinal = np.clip(np.round(x * denom), 0, denom).astype(np.float32) / denom
  cat = np.clip(np.round(x), 0, np.maximum(n - 1, 0)).astype(np.float32)
  out = np.where(k == KIND_FLOAT, np.clip(x, 0.0, 1.0),
                 np.where(k == KIND_ORDINAL, ordinal, np.where(k == KIND_CATEGORICAL, cat, 0.0)))
  return out.astype(np.float32)
