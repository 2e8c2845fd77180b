"""Tests of data_gen: the prior, behaviour algorithms, GP posterior and corpus."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optformer.data_gen import behaviour, gp, prior
from optformer.data_gen.prior import KIND_CATEGORICAL, KIND_FLOAT, KIND_ORDINAL, KIND_UNUSED, PriorConfig
from optformer.data_gen.task import SyntheticTask

PRIOR = PriorConfig.tiny()
BEHAVIOUR = behaviour.BehaviourConfig.tiny()
T = 8  # Trials per trajectory in these tests (= CorpusConfig.tiny(), to share compilations).


def _generate(num_tasks=16, mix=(1.0, 1.0, 1.0), seed=0, split="train"):
  return behaviour.generate(PRIOR, num_tasks, T, mix, seed, split=split, behaviour_config=BEHAVIOUR)


@pytest.fixture(scope="module")
def mixed():
  return _generate(num_tasks=64)  # 64 tasks: the same compiled shapes as the GP-UCB test.


@pytest.fixture(scope="module")
def many_tasks():
  return prior.sample_tasks(PRIOR, prior.task_seeds(7, "train", 0, 2048))


def test_task_seeds_disjoint_between_splits_and_global_seeds():
  train = prior.task_seeds(0, "train", 0, 1000)
  valid = prior.task_seeds(0, "validation", 0, 1000)
  other = prior.task_seeds(1, "train", 0, 1000)
  assert len(set(train) | set(valid) | set(other)) == 3000
  np.testing.assert_array_equal(prior.task_seeds(0, "train", 10, 5), train[10:15])
  with pytest.raises(ValueError):
    prior.task_seeds(0, "test", 0, 1)
  with pytest.raises(ValueError):
    prior.task_seeds(-1, "train", 0, 1)


def test_generation_is_deterministic_by_seed(mixed):
  again = _generate(num_tasks=64)
  for k in mixed:
    np.testing.assert_array_equal(mixed[k], again[k], err_msg=k)
  # A task and its trajectory depend only on its seed, not on its batch.
  part = behaviour.generate_from_seeds(PRIOR, mixed["task_seed"][5:13], T, (1.0, 1.0, 1.0), BEHAVIOUR)
  for k in mixed:
    np.testing.assert_allclose(part[k], mixed[k][5:13], rtol=1e-5, atol=1e-6, err_msg=k)
  other = _generate(num_tasks=64, seed=1)
  assert not np.array_equal(other["x"], mixed["x"])
  assert set(np.unique(mixed["algorithm"])) == {0, 1, 2}


def test_every_configuration_is_valid_for_its_kind(mixed):
  x, z = mixed["x"], mixed["z"]
  kinds = np.broadcast_to(mixed["kinds"][:, None, :], x.shape)
  n = np.broadcast_to(mixed["num_values"][:, None, :], x.shape)
  slot = np.arange(PRIOR.max_dims)
  assert np.array_equal(mixed["kinds"] != KIND_UNUSED, slot[None, :] < mixed["num_dims"][:, None])
  assert set(np.unique(mixed["kinds"])) <= {0, 1, 2, 3}
  fl = kinds == KIND_FLOAT
  assert np.all((x[fl] >= 0) & (x[fl] <= 1))
  ints = kinds == KIND_ORDINAL
  assert np.all((n[ints] >= 2) & (n[ints] <= PRIOR.max_int_levels))
  levels = np.round(x[ints] * (n[ints] - 1))
  np.testing.assert_array_equal(x[ints], levels.astype(np.float32) / (n[ints] - 1).astype(np.float32))
  cat = kinds == KIND_CATEGORICAL
  assert np.all((n[cat] >= 2) & (n[cat] <= PRIOR.max_categories))
  assert np.all((x[cat] == np.round(x[cat])) & (x[cat] >= 0) & (x[cat] < n[cat]))
  unused = kinds == KIND_UNUSED
  assert np.all(x[unused] == 0) and np.all(z[unused] == 0) and np.all(n[unused] == 0)
  assert np.all((z >= 0) & (z <= 1))
  assert x.dtype == np.float32 and mixed["task_seed"].dtype == np.int64


def test_observations_are_f_plus_noise(mixed):
  batch = prior.sample_tasks(PRIOR, mixed["task_seed"])
  np.testing.assert_allclose(mixed["f"], prior.evaluate(batch, mixed["x"]), rtol=1e-5, atol=1e-5)
  resid = (mixed["y"] - mixed["f"]) / np.sqrt(mixed["noise_variance"])[:, None]
  assert abs(resid.mean()) < 0.2 and 0.8 < resid.std() < 1.2
  ls = mixed["lengthscale"]
  assert np.all(ls[mixed["kinds"] == KIND_UNUSED] == 1e6) and np.all(ls > 0) and np.all(np.isfinite(ls))


def test_irrelevant_and_unused_dims_do_not_change_f(many_tasks):
  batch = many_tasks
  rng = np.random.default_rng(0)
  checked = 0
  for i in range(64):
    task = SyntheticTask.from_batch(batch, i)
    irrelevant = np.isinf(task.hyperparameters["lengthscale"])
    if task.num_dims == PRIOR.max_dims and not irrelevant.any():
      continue
    u = rng.random((32, PRIOR.max_dims)).astype(np.float32)
    x = prior.canonicalize(u[None], task.kinds[None], task.num_values[None])[0]
    x2 = x.copy()
    resampled = prior.canonicalize(rng.random((1, 32, PRIOR.max_dims)) * 5, task.kinds[None], task.num_values[None])[0]
    x2[:, irrelevant] = resampled[:, irrelevant]
    x2[:, task.num_dims:] = rng.random((32, PRIOR.max_dims - task.num_dims))  # Junk in unused slots.
    np.testing.assert_array_equal(task.evaluate(x), task.evaluate(x2))
    checked += 1
  assert checked > 10
  # ... while relevant dims do change f.
  task = SyntheticTask.from_batch(batch, 0)
  x = prior.canonicalize(rng.random((1, 64, PRIOR.max_dims)), task.kinds[None], task.num_values[None])[0]
  assert np.std(task.evaluate(x)) > 0


def test_hyperparameter_distribution_matches_hebo_plus(many_tasks):
  batch = many_tasks
  active = np.asarray(batch.kinds) != KIND_UNUSED
  inv = np.asarray(batch.inv_lengthscale)
  ls = 1.0 / inv[inv > 0]
  assert abs(ls.mean() - 1.2106559584074301 / 1.5212245992840594) < 0.03
  assert abs(np.mean(batch.outputscale) - 0.8452312502679863 / 0.3993553245745406) < 0.15
  log_noise = np.log(np.asarray(batch.noise_variance))
  assert abs(log_noise.mean() + 4.63) < 0.03 and abs(log_noise.std() - 0.5) < 0.03
  frac_irrelevant = 1.0 - (inv > 0).sum() / active.sum()
  # Each of D ~ U{1..D_max} dims is irrelevant w.p. p, but not all: E[#irrelevant | D] = D p - p^D.
  p, dims_range = PRIOR.p_irrelevant, np.arange(1, PRIOR.max_dims + 1)
  expected = np.sum(dims_range * p - p**dims_range) / np.sum(dims_range)
  assert abs(frac_irrelevant - expected) < 0.02, (frac_irrelevant, expected)
  assert np.all((inv > 0).sum(1) >= 1)
  dims = np.asarray(batch.num_dims)
  assert dims.min() == 1 and dims.max() == PRIOR.max_dims
  kinds = np.asarray(batch.kinds)[active]
  np.testing.assert_allclose(np.bincount(kinds, minlength=4)[1:] / kinds.size, (0.6, 0.25, 0.15), atol=0.02)


def test_rff_functions_have_matern_covariance(many_tasks):
  """Across tasks with fixed hyperparameters, Cov[f(z), f(z')] ~ s * k_matern(z, z')."""
  b = len(many_tasks.outputscale)
  s, ls = 1.7, np.array([0.3, 0.6, 0.2], np.float32)
  batch = many_tasks._replace(outputscale=np.full(b, s, np.float32),
                              inv_lengthscale=np.broadcast_to(1 / ls, (b, 3)).astype(np.float32))
  z = jnp.array([[0.2, 0.5, 0.1], [0.2, 0.5, 0.1], [0.35, 0.5, 0.1], [0.2, 0.8, 0.1], [0.9, 0.1, 0.5]])
  f = np.asarray(jax.vmap(prior.evaluate_latent_one, (0, None))(batch, z))  # [B, 5]
  np.testing.assert_allclose(np.var(f[:, 0]), s, rtol=0.1)
  emp = np.cov(f.T)[0, 1:] / s
  exact = np.asarray(gp.matern32(z[:1], z[1:], 1 / ls))[0]
  np.testing.assert_allclose(emp, exact, atol=0.08)
  assert exact[-1] < 0.1 and exact[0] == pytest.approx(1.0, abs=1e-5)


def test_gp_posterior_matches_dense_solve_and_ignores_padding():
  task = SyntheticTask.sample(PRIOR, 11).task
  rng = np.random.default_rng(0)
  z = rng.random((10, PRIOR.max_dims)).astype(np.float32)
  y = rng.standard_normal(10).astype(np.float32)
  zq = rng.random((5, PRIOR.max_dims)).astype(np.float32)
  n_obs = 6
  mask = np.arange(10) < n_obs
  posterior = jax.jit(gp.posterior)
  mean, var = posterior(task, z, y, mask, zq)
  # Dense float64 reference on the 6 real observations only.
  s, noise = float(task.outputscale), float(task.noise_variance)
  kern = lambda a, b: s * np.asarray(gp.matern32(a, b, task.inv_lengthscale), np.float64)
  k = kern(z[:n_obs], z[:n_obs]) + (noise + gp.JITTER * s) * np.eye(n_obs)
  kq = kern(zq, z[:n_obs])
  ref_mean = kq @ np.linalg.solve(k, y[:n_obs])
  ref_var = s - np.sum(kq * np.linalg.solve(k, kq.T).T, 1)
  np.testing.assert_allclose(mean, ref_mean, rtol=1e-3, atol=1e-3 * np.sqrt(s))
  np.testing.assert_allclose(var, np.maximum(ref_var, 0), atol=2e-3 * s)
  mean0, var0 = posterior(task, z, y, np.zeros(10, bool), zq)
  np.testing.assert_allclose(mean0, 0.0)
  np.testing.assert_allclose(var0, s, rtol=1e-5)


def test_gp_ucb_beats_random_search():
  """Behaviour check: knowing the true kernel, GP-UCB finds better f than random."""
  rand = behaviour.generate(PRIOR, 64, T, {"random": 1.0}, 5, behaviour_config=BEHAVIOUR)
  ucb = behaviour.generate(PRIOR, 64, T, {"gp_ucb": 1.0}, 5, behaviour_config=BEHAVIOUR)
  np.testing.assert_array_equal(rand["outputscale"], ucb["outputscale"])  # Same tasks.
  scale = np.sqrt(rand["outputscale"])
  best_rand = rand["f"].max(1) / scale
  best_ucb = ucb["f"].max(1) / scale
  # Seeds 5..8 give mean gains 0.15..0.22 (in prior std units) and wins:losses >= 2.5.
  assert best_ucb.mean() > best_rand.mean() + 0.08, (best_ucb.mean(), best_rand.mean())
  assert np.sum(best_ucb > best_rand + 1e-6) > 2 * np.sum(best_ucb < best_rand - 1e-6)


def test_synthetic_task_space_round_trip_and_optimum():
  search_space = pytest.importorskip("optformer.search_space")
  assert (search_space.KIND_FLOAT, search_space.KIND_ORDINAL, search_space.KIND_CATEGORICAL) == (
      KIND_FLOAT, KIND_ORDINAL, KIND_CATEGORICAL)
  rng = np.random.default_rng(1)
  for seed in range(20):
    task = SyntheticTask.sample(PRIOR, seed)
    assert len(task.space) == task.num_dims
    for _ in range(5):
      params = task.space.sample(rng)
      x = task.to_unit(params)
      assert x.shape == (PRIOR.max_dims,) and np.all(x[task.num_dims:] == 0)
      back = task.from_unit(x)
      for name, value in task.space.validate(params).items():
        if isinstance(value, float):
          assert back[name] == pytest.approx(value, abs=1e-6)  # x is float32.
        else:
          assert back[name] == value
      canon = prior.canonicalize(x[None, None], task.kinds[None], task.num_values[None])[0, 0]
      np.testing.assert_array_equal(canon, x)
  task = SyntheticTask.sample(PRIOR, 3)
  best = task.optimum_estimate(num_random=2048, num_rounds=10)
  x = prior.canonicalize(rng.random((1, 4096, PRIOR.max_dims)), task.kinds[None], task.num_values[None])[0]
  assert best >= task.evaluate(x).max() - 1e-6
  f, x_best = task.optimum_estimate_with_x(num_random=2048, num_rounds=10)
  assert f == best and task.evaluate(x_best[None])[0] == pytest.approx(best)


def test_corpus_write_read_round_trip(tmp_path):
  from optformer.data_gen import corpus
  config = corpus.CorpusConfig.tiny()
  builder = corpus.build_corpus(str(tmp_path), config)
  assert builder.stats["train"].total_count == config.num_train
  assert corpus.load_corpus_config(str(tmp_path)) == config
  seeds = {}
  for split, num in (("train", config.num_train), ("validation", config.num_validation)):
    src = corpus.load_corpus(str(tmp_path), split)
    assert len(src) == num
    for start in range(0, num, config.chunk_size):  # Same chunks as the builder: bitwise equal.
      count = min(config.chunk_size, num - start)
      ref = behaviour.generate(config.prior, count, config.num_trials, config.algorithm_mix, config.seed,
                               split=split, start=start, behaviour_config=config.behaviour)
      for i in range(count):
        record = src[start + i]
        assert set(record) == set(ref)
        for k, v in record.items():
          assert v.dtype == ref[k].dtype, k
          np.testing.assert_array_equal(v, ref[k][i], err_msg=f"{split}[{start + i}].{k}")
      seeds.setdefault(split, set()).update(ref["task_seed"].tolist())
  assert not seeds["train"] & seeds["validation"]
  # Building the same config again reuses the files.
  assert corpus.build_corpus(str(tmp_path), config).stats["train"].total_count == 0
  version = str(corpus.OptformerCorpus.VERSION)
  info = json.loads((tmp_path / "optformer_corpus" / config.name / version / "dataset_info.json").read_text())
  assert info["fileFormat"] == "array_record"



def test_resolve_corpus_dir_picks_newest_version_of_one_config(tmp_path):
  from optformer.data_gen import corpus
  for version in ("1.0.0", "1.10.0", "1.2.0"):
    (tmp_path / "optformer_corpus" / "cfg_a" / version).mkdir(parents=True)
    (tmp_path / "optformer_corpus" / "cfg_a" / version / "dataset_info.json").write_text("{}")
  assert corpus.resolve_corpus_dir(str(tmp_path)).endswith("cfg_a/1.10.0")
  (tmp_path / "optformer_corpus" / "cfg_b" / "1.0.0").mkdir(parents=True)
  (tmp_path / "optformer_corpus" / "cfg_b" / "1.0.0" / "dataset_info.json").write_text("{}")
  with pytest.raises(ValueError, match="Several corpora"):
    corpus.resolve_corpus_dir(str(tmp_path))
  with pytest.raises(FileNotFoundError):
    corpus.resolve_corpus_dir(str(tmp_path / "missing"))


def test_the_noise_mixture_changes_only_the_noise_and_is_off_by_default(many_tasks):
  seeds = prior.task_seeds(7, "train", 0, 2048)
  assert PRIOR.p_noiseless == 0 and "p_noiseless" not in PRIOR.to_json()  # Configs from before it stay equal.
  half = dataclasses.replace(PRIOR, p_noiseless=0.5, noiseless_log_mean=-14.0, noiseless_log_std=1.0)
  mixed = prior.sample_tasks(half, seeds)
  for name, a, b in zip(many_tasks._fields, many_tasks, mixed):  # The extra draw disturbs no other draw.
    if name != "noise_variance":
      np.testing.assert_array_equal(a, b, err_msg=name)
  std_normal = (np.log(np.asarray(many_tasks.noise_variance, np.float64)) + 4.63) / 0.5  # The shared N(0, 1) draw.
  log_noise = np.log(np.asarray(mixed.noise_variance, np.float64))
  quiet = np.abs(log_noise - (-14.0 + std_normal)) < 1e-3
  loud = np.abs(log_noise - (-4.63 + 0.5 * std_normal)) < 1e-3
  assert np.all(quiet ^ loud) and abs(quiet.mean() - 0.5) < 0.04, quiet.mean()
  np.testing.assert_array_equal(mixed.noise_variance[loud], many_tasks.noise_variance[loud])  # HEBO+'s draw as it was.
  assert abs(log_noise[quiet].mean() + 14.0) < 0.1 and abs(log_noise[quiet].std() - 1.0) < 0.06
  assert abs(log_noise[loud].mean() + 4.63) < 0.05 and abs(log_noise[loud].std() - 0.5) < 0.03
  assert half.to_json()["p_noiseless"] == 0.5
  for bad in (dict(p_noiseless=1.5), dict(p_noiseless=-0.1), dict(noiseless_log_std=-1.0)):
    with pytest.raises(ValueError, match="p_noiseless|noiseless_log_std"):
      dataclasses.replace(PRIOR, **bad)
