"""RiemannDistribution against brute-force integration of its piecewise-uniform density."""

import numpy as np
import pytest

from optformer.distribution import RiemannDistribution

K = 400  # grid points per bin for the brute-force integrals


def _random_histograms(seed, n=5, y=12):
  """probs float [n, Y] (some empty bins) and increasing, unevenly spaced edges float [Y + 1]."""
  rng = np.random.default_rng(seed)
  probs = rng.dirichlet(np.full(y, 0.7), size=n)
  probs[rng.random((n, y)) < 0.25] = 0.0
  probs[:, rng.integers(y)] += 0.05  # no row is all zero
  probs /= probs.sum(axis=1, keepdims=True)
  edges = rng.normal(2.0, 3.0) + np.concatenate([[0.0], np.cumsum(rng.uniform(0.1, 2.0, size=y))])
  return probs, edges


def _grid(probs, edges):
  """Midpoint-rule nodes float [Y K] and weights float [n, Y K] of the piecewise-uniform density."""
  a, w = edges[:-1], np.diff(edges)
  nodes = (a[:, None] + (np.arange(K) + 0.5)[None, :] / K * w[:, None]).reshape(-1)  # [Y K]
  weights = np.repeat(probs / K, K, axis=1)  # [n, Y K]
  return nodes, weights


SEEDS = [0, 1, 2]


@pytest.mark.parametrize("seed", SEEDS)
def test_mean_std_pdf_against_grid(seed):
  probs, edges = _random_histograms(seed)
  dist = RiemannDistribution(probs, edges)
  nodes, wts = _grid(probs, edges)
  mean = wts @ nodes
  std = np.sqrt(wts @ nodes**2 - mean**2)
  np.testing.assert_allclose(dist.mean, mean, rtol=1e-9, atol=1e-9)
  np.testing.assert_allclose(dist.std, std, rtol=1e-4)
  # The density integrates to one and vanishes outside the edges.
  fine = np.linspace(edges[0], edges[-1], 200_001)
  dens = np.stack([dist.pdf(f) for f in fine[::100]], axis=1)  # [n, 2001]
  np.testing.assert_allclose(np.trapezoid(dens, fine[::100], axis=1), 1.0, atol=2e-2)
  assert np.all(dist.pdf(edges[0] - 1.0) == 0) and np.all(dist.log_prob(edges[-1] + 1.0) == -np.inf)


@pytest.mark.parametrize("seed", SEEDS)
def test_cdf_against_grid(seed):
  probs, edges = _random_histograms(seed)
  dist = RiemannDistribution(probs, edges)
  nodes, wts = _grid(probs, edges)
  ys = np.concatenate([[edges[0] - 1.0, edges[-1] + 1.0], edges, np.random.default_rng(seed).uniform(edges[0], edges[-1], 30)])
  for y in ys:
    np.testing.assert_allclose(dist.cdf(y), wts[:, nodes <= y].sum(axis=1), atol=1.0 / K)
  np.testing.assert_allclose(dist.cdf(edges[0]), 0.0, atol=1e-12)
  np.testing.assert_allclose(dist.cdf(edges[-1]), 1.0, atol=1e-12)
  per_row = np.linspace(edges[0], edges[-1], len(dist))
  np.testing.assert_allclose(dist.cdf(per_row), [dist.cdf(y)[i] for i, y in enumerate(per_row)])


@pytest.mark.parametrize("seed", SEEDS)
def test_quantile_inverts_cdf(seed):
  probs, edges = _random_histograms(seed)
  dist = RiemannDistribution(probs, edges)
  qs = np.linspace(0.01, 0.99, 25)
  quantiles = np.stack([dist.quantile(q) for q in qs], axis=1)  # [n, 25]
  assert np.all(np.diff(quantiles, axis=1) >= -1e-12)  # non-decreasing in q
  for j, q in enumerate(qs):
    np.testing.assert_allclose(dist.cdf(quantiles[:, j]), q, atol=1e-9)
  # quantile(cdf(y)) == y where the density is positive.
  rng = np.random.default_rng(seed)
  for i in range(len(dist)):
    row = RiemannDistribution(probs[i : i + 1], edges)
    for b in np.flatnonzero(probs[i] > 0)[:5]:
      y = edges[b] + rng.uniform(0.05, 0.95) * (edges[b + 1] - edges[b])
      np.testing.assert_allclose(row.quantile(float(row.cdf(y)[0])), y, rtol=1e-9, atol=1e-9)
  assert np.all(dist.quantile(0.0) >= edges[0]) and np.all(dist.quantile(1.0) <= edges[-1])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("goal", ["maximize", "minimize"])
def test_ei_pi_ucb_against_grid(seed, goal):
  probs, edges = _random_histograms(seed)
  dist = RiemannDistribution(probs, edges, goal=goal)
  nodes, wts = _grid(probs, edges)
  sign = 1.0 if goal == "maximize" else -1.0
  bests = [edges[0] - 0.5, edges[0], *np.random.default_rng(seed).uniform(edges[0], edges[-1], 6), edges[5], edges[-1], edges[-1] + 0.5]
  for best in bests:
    improvement = np.maximum(sign * (nodes - best), 0.0)
    ei = dist.expected_improvement(best)
    np.testing.assert_allclose(ei, wts @ improvement, rtol=1e-4, atol=1e-6)
    assert np.all(ei >= 0)
    pi = dist.probability_of_improvement(best)
    np.testing.assert_allclose(pi, wts[:, sign * (nodes - best) > 0].sum(axis=1), atol=1.0 / K)
    assert np.all((pi >= -1e-12) & (pi <= 1 + 1e-12))
  mean = wts @ nodes
  std = np.sqrt(wts @ nodes**2 - mean**2)
  for beta in (0.0, 1.0, 4.0):
    np.testing.assert_allclose(dist.upper_confidence_bound(beta), mean + sign * np.sqrt(beta) * std, rtol=1e-4)


def test_improvement_is_certain_or_impossible_beyond_the_edges():
  probs, edges = _random_histograms(7)
  up = RiemannDistribution(probs, edges, "maximize")
  down = RiemannDistribution(probs, edges, "minimize")
  np.testing.assert_allclose(up.expected_improvement(edges[-1]), 0.0, atol=1e-12)
  np.testing.assert_allclose(down.expected_improvement(edges[0]), 0.0, atol=1e-12)
  np.testing.assert_allclose(up.expected_improvement(edges[0] - 2.0), up.mean - (edges[0] - 2.0))
  np.testing.assert_allclose(down.expected_improvement(edges[-1] + 2.0), edges[-1] + 2.0 - down.mean)
  np.testing.assert_allclose(up.probability_of_improvement(edges[0] - 1.0), 1.0)
  np.testing.assert_allclose(down.probability_of_improvement(edges[0] - 1.0), 0.0)


def test_probs_are_normalized():
  probs, edges = _random_histograms(3)
  dist = RiemannDistribution(probs * 3.0, edges)
  np.testing.assert_allclose(dist.probs.sum(axis=1), 1.0)
  np.testing.assert_allclose(dist.mean, RiemannDistribution(probs, edges).mean)


@pytest.mark.parametrize(
    "probs, edges, goal, match",
    [
        (np.full(4, 0.25), np.arange(5.0), "maximize", "probs must be"),  # 1-D probs
        (np.full((2, 4), 0.25), np.arange(4.0), "maximize", "probs must be"),  # edges too short
        (np.full((2, 4), 0.25), np.arange(6.0), "maximize", "probs must be"),  # edges too long
        (np.full((2, 4), 0.25), np.array([0.0, 1.0, 1.0, 2.0, 3.0]), "maximize", "strictly increasing"),
        (np.full((2, 4), 0.25), np.array([0.0, 2.0, 1.0, 3.0, 4.0]), "maximize", "strictly increasing"),
        (np.full((2, 4), 0.25), np.arange(5.0), "max", "goal"),
    ],
)
def test_constructor_errors(probs, edges, goal, match):
  with pytest.raises(ValueError, match=match):
    RiemannDistribution(probs, edges, goal)


@pytest.mark.parametrize("q", [-0.01, 1.01, float("nan")])
def test_quantile_level_outside_unit_interval_raises(q):
  dist = RiemannDistribution(np.full((1, 4), 0.25), np.arange(5.0))
  with pytest.raises(ValueError, match="quantile level"):
    dist.quantile(q)
