"""A bad model fails: the shipped model's predictions through the public Surrogate path, next to the exact GP.

Twelve functions drawn from a 2-D GP (RBF kernel, lengthscales uniform in [0.15, 0.5], noise variance 0.01,
random output scale and shift), 64 points each: the first n are the context (`Surrogate(space).fit`, the
default model, its y map and bucket padding included), the other 64 - n are queries scored by
`predict_distribution(...).log_prob` in the objective's units. The exact GP with the true hyperparameters
(Rasmussen & Williams 2006, eq. 2.25-2.26) is the bound; the gap is model - GP in nats per query, at contexts
of 4, 8 and 16 trials. Uniform bar probabilities (the shipped model with a zero head: the prior's marginal of
z, since the borders are its equal-mass quantiles) are the broken baseline, scored the same way.

Measured here (main, Dec 2026): shipped gap 0.36 / 0.45 / 0.49, uniform bars 0.59 / 0.88 / 1.21 nats at
n = 4 / 8 / 16. (training.pfn_eval.gp_gap's +0.23 at n = 20 is on the training prior's own tasks, calling
the network directly.)
"""

import numpy as np
import pytest
from flax import nnx

from optformer import Float, SearchSpace, Surrogate, checkpoint

SPACE = SearchSpace([Float("x", 0.0, 1.0), Float("y", 0.0, 1.0)])
N, NOISE = 64, 0.01
# Context size -> largest mean gap (nats per query) allowed: 0.11-0.31 above the shipped model's measured gap,
# 0.12-0.40 below the uniform bars'. Contexts of 4, 8 and 16 use the inference buckets 8 and 16 (one compilation
# each, shared with test_pfn_optimizer's 2-D tests).
BOUNDS = {4: 0.47, 8: 0.65, 16: 0.8}


def _kernel(a, b, lengthscales):
  return np.exp(-0.5 * (((a[:, None, :] - b[None, :, :]) / lengthscales) ** 2).sum(-1))


def _tasks(num=12, seed=0):
  """[(X float [N, 2], y float [N], lengthscales [2], scale, shift)] of GP draws."""
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(num):
    ls, scale, shift = rng.uniform(0.15, 0.5, size=2), rng.lognormal(0.0, 1.0), rng.normal() * 10
    X = rng.random((N, 2))
    f = np.linalg.cholesky(_kernel(X, X, ls) + NOISE * np.eye(N)) @ rng.normal(size=N)
    out.append((X, shift + scale * f, ls, scale, shift))
  return out


def _gp_nll(X, y, ls, scale, shift, n):
  """float [N - n]: -log N(y_q; mu, s^2) of the exact GP posterior predictive (noisy targets)."""
  kc = _kernel(X[:n], X[:n], ls) + NOISE * np.eye(n)
  kq = _kernel(X[n:], X[:n], ls)
  mu = shift + scale * kq @ np.linalg.solve(kc, (y[:n] - shift) / scale)
  var = scale**2 * (1.0 + NOISE - np.einsum("ij,ji->i", kq, np.linalg.solve(kc, kq.T)))
  return 0.5 * np.log(2 * np.pi * var) + 0.5 * (y[n:] - mu) ** 2 / var


def _configs(X):
  return [{"x": float(a), "y": float(b)} for a, b in X]


def _gaps(model) -> dict:
  """Context size -> mean over tasks of the mean query NLL gap to the exact GP (nats), through Surrogate."""
  gaps = {n: [] for n in BOUNDS}
  for X, y, ls, scale, shift in _tasks():
    for n in BOUNDS:
      dist = Surrogate(SPACE, model=model).fit(_configs(X[:n]), y[:n]).predict_distribution(_configs(X[n:]))
      gaps[n].append(np.mean(-dist.log_prob(y[n:]) - _gp_nll(X, y, ls, scale, shift, n)))
  return {n: float(np.mean(g)) for n, g in gaps.items()}


@pytest.fixture(scope="module")
def uniform_bars():
  """The shipped model with a zero head: every bar equally likely, whatever the context and the query."""
  model = checkpoint.load_pfn(checkpoint.V2_CHECKPOINT)
  graphdef, state = nnx.split(model)
  params = nnx.to_pure_dict(state)
  params["head"]["kernel"] = np.zeros_like(params["head"]["kernel"])
  params["head"]["bias"] = np.zeros_like(params["head"]["bias"])
  nnx.replace_by_pure_dict(state, params)
  return nnx.merge(graphdef, state)


def test_shipped_model_is_close_to_the_exact_gp_through_the_public_path_and_uniform_bars_are_not(uniform_bars):
  good = _gaps(None)  # None: the shipped default, as a user gets it.
  bad = _gaps(uniform_bars)
  for n, bound in BOUNDS.items():
    assert good[n] < bound < bad[n], (n, good, bad)
  # It learns from its context: the gap stays flat while the GP's own NLL falls with n (uniform bars' grows).
  assert bad[16] - bad[4] > 0.4 and good[16] - good[4] < 0.3, (good, bad)
