"""The policy head of model v2 (optformer/model/network.py) and its decoder (optformer/model/policy.py)."""

import dataclasses
import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from optformer.model import network
from optformer.model import policy
from optformer.search_space import KIND_CATEGORICAL as CAT, KIND_ORDINAL as ORD

V = 8  # Policy tokens of the tiny model.
FLOAT = 1


@pytest.fixture(scope="module")
def model():
  return network.create_model(dataclasses.replace(network.PFNConfig.tiny(), policy_tokens=V), seed=0)


def context_batch(kinds, num_values, num_context=10, seed=0) -> network.SurrogateBatch:
  """One study (B = 1) of `num_context` random valid trials of a space without conditions (numpy)."""
  rng = np.random.default_rng(seed)
  kinds, nv = np.asarray(kinds, np.int32), np.asarray(num_values, np.int32)
  d = len(kinds)
  u = rng.uniform(size=(num_context, d))
  x = np.where(kinds == CAT, np.floor(u * np.maximum(nv, 1)), np.where(kinds == ORD, np.round(u * (nv - 1)) / np.maximum(nv - 1, 1), u))
  x = np.where(kinds > 0, x, 0.0)
  ones = np.ones((1, num_context), bool)
  return network.SurrogateBatch(
      x=x[None].astype(np.float32), active=np.broadcast_to(kinds > 0, (1, num_context, d)), kinds=kinds[None],
      num_values=nv[None], slot_ids=np.arange(d, dtype=np.int32)[None],
      z=rng.normal(size=(1, num_context)).astype(np.float32), feasible=ones, context=ones, valid=ones)


def encoded(model, kinds, num_values, num_context=10, seed=0):
  """The encoded `context_batch`."""
  return model.encode_context(jax.tree.map(jnp.asarray, context_batch(kinds, num_values, num_context, seed)))


# Slots: float, 5 levels, 100 levels (> V), a 3-way categorical parent, a float child active under category 0,
# a 2-way categorical child active under categories 1 and 2, an unused slot.
MIXED_KINDS = [FLOAT, ORD, ORD, CAT, FLOAT, CAT, 0]
MIXED_LEVELS = [0, 5, 100, 3, 0, 2, 0]


def mixed_space():
  allowed = np.ones((7, V), bool)
  allowed[4] = np.arange(V) == 0
  allowed[5] = (np.arange(V) == 1) | (np.arange(V) == 2)
  return policy.decode_space(MIXED_KINDS, MIXED_LEVELS, np.arange(7), V, parent=[-1, -1, -1, -1, 3, 3, -1],
                             allowed=allowed)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_every_decoded_configuration_is_inside_its_search_space(model, temperature):
  enc = encoded(model, MIXED_KINDS, MIXED_LEVELS)
  units, active = map(np.asarray, policy.sample(model, enc, mixed_space(), 256, jax.random.key(1), temperature))
  assert units.shape == (256, 7) and units.dtype == np.float32 and active.dtype == bool
  numeric = np.asarray(MIXED_KINDS) != CAT
  assert np.all((units[:, numeric] >= 0) & (units[:, numeric] <= 1))
  assert np.all(units[~active] == 0)
  assert np.allclose(units[:, 1] * 4, np.round(units[:, 1] * 4), atol=1e-5)
  assert np.allclose(units[:, 2] * 99, np.round(units[:, 2] * 99), atol=1e-4)
  assert set(np.unique(units[:, 3])) <= {0.0, 1.0, 2.0} and len(np.unique(units[:, 3])) == 3
  assert set(np.unique(units[active[:, 5], 5])) <= {0.0, 1.0}
  np.testing.assert_array_equal(active[:, 4], units[:, 3] == 0)
  np.testing.assert_array_equal(active[:, 5], units[:, 3] != 0)
  assert active[:, :4].all() and not active[:, 6].any()
  assert len(np.unique(np.floor(units[:, 0] * V))) > 3  # Floats spread over bins, and inside them.
  assert len(np.unique(units[:, 0])) == 256


def small_space(order=None):
  """A categorical parent (3), an ordinal child of 2 levels under categories 0 and 1, an ordinal of 3 levels:
  15 configurations."""
  allowed = np.ones((3, V), bool)
  allowed[1] = np.arange(V) < 2
  return policy.decode_space([CAT, ORD, ORD], [3, 2, 3], [0, 1, 2], V, parent=[-1, 0, -1], allowed=allowed,
                             order=order)


def small_configurations():
  rows = []
  for k, c, o in itertools.product(range(3), range(3), range(3)):
    if (k < 2) != (c < 2):  # The child is active (levels 0, 1) exactly under categories 0 and 1 (c = 2: inactive).
      continue
    rows.append(([k, c if k < 2 else 0, o / 2], [True, k < 2, True]))
  units, active = map(np.asarray, zip(*rows))
  return units.astype(np.float32), active


@pytest.mark.parametrize("order", [None, [2, 0, 1]])
def test_teacher_forced_probabilities_of_all_configurations_sum_to_one(model, order):
  units, active = small_configurations()
  assert len(units) == 15
  enc = encoded(model, [CAT, ORD, ORD], [3, 2, 3])
  p = np.exp(np.asarray(policy.log_prob(model, enc, small_space(order), units, active), np.float64))
  assert abs(p.sum() - 1.0) < 1e-4 and (p > 0).all()


def test_float_bins_share_the_mass_of_their_slot(model):
  """With a float slot, the V bins of each configuration of the rest sum to one too."""
  enc = encoded(model, [FLOAT, CAT], [0, 3])
  space = policy.decode_space([FLOAT, CAT], [0, 3], [0, 1], V)
  units = np.array([[(b + 0.5) / V, k] for b in range(V) for k in range(3)], np.float32)
  p = np.exp(np.asarray(policy.log_prob(model, enc, space, units, np.ones_like(units, bool)), np.float64))
  assert abs(p.sum() - 1.0) < 1e-4


def test_the_policy_ignores_context_order_and_padding(model):
  units, active = small_configurations()
  enc = encoded(model, [CAT, ORD, ORD], [3, 2, 3])
  ctx = context_batch([CAT, ORD, ORD], [3, 2, 3])
  perm = np.random.default_rng(1).permutation(10)
  pad = lambda a, fill: np.concatenate([a[:, perm], np.full((1, 6) + a.shape[2:], fill, a.dtype)], 1)
  ctx = ctx._replace(x=pad(ctx.x, 0.5), active=pad(ctx.active, True), z=pad(ctx.z, 3.0),
                     feasible=pad(ctx.feasible, True), context=pad(ctx.context, True), valid=pad(ctx.valid, False))
  shuffled = model.encode_context(jax.tree.map(jnp.asarray, ctx))
  space = small_space()
  np.testing.assert_allclose(np.asarray(policy.log_prob(model, shuffled, space, units, active)),
                             np.asarray(policy.log_prob(model, enc, space, units, active)), atol=2e-5)


def test_sample_frequencies_match_the_teacher_forced_probabilities(model):
  units, active = small_configurations()
  enc = encoded(model, [CAT, ORD, ORD], [3, 2, 3])
  space = small_space()
  p = np.exp(np.asarray(policy.log_prob(model, enc, space, units, active), np.float64))
  su, sa = map(np.asarray, policy.sample(model, enc, space, 4096, jax.random.key(3)))
  freq = np.array([np.mean(np.all((su == u) & (sa == a), 1)) for u, a in zip(units, active)])
  assert abs(freq.sum() - 1.0) < 1e-9  # Every sample is one of the 15 configurations.
  assert np.abs(freq - p).max() < 0.035  # 4.5 standard errors at worst.


def test_low_temperature_concentrates_on_the_most_likely_configuration(model):
  units, active = small_configurations()
  enc = encoded(model, [CAT, ORD, ORD], [3, 2, 3])
  space = small_space()
  lp = np.asarray(policy.log_prob(model, enc, space, units, active))
  su, sa = map(np.asarray, policy.sample(model, enc, space, 64, jax.random.key(4), temperature=1e-3))
  assert np.all(np.all((su == units[np.argmax(lp)]) & (sa == active[np.argmax(lp)]), 1))


def test_a_copy_pointer_head_normalizes_and_decodes_valid_configurations():
  model = network.create_model(dataclasses.replace(network.PFNConfig.tiny(), policy_tokens=V, policy_copy=True), seed=1)
  units, active = small_configurations()
  enc = encoded(model, [CAT, ORD, ORD], [3, 2, 3])
  assert enc.final.shape == (1, 10, model.config.d_model) and enc.slot_values.shape[:3] == (1, 10, 3)
  p = np.exp(np.asarray(policy.log_prob(model, enc, small_space(), units, active), np.float64))
  assert abs(p.sum() - 1.0) < 1e-4
  su, sa = map(np.asarray, policy.sample(model, enc, small_space(), 15, jax.random.key(0)))
  assert all(np.any(np.all((units == u) & (active == a), 1)) for u, a in zip(su, sa))


def test_decode_space_rejects_what_the_policy_cannot_decode():
  with pytest.raises(ValueError, match="categories"):
    policy.decode_space([CAT], [V + 1], [0], V)
  with pytest.raises(ValueError, match="before its parent"):
    policy.decode_space([CAT, FLOAT], [2, 0], [0, 1], V, parent=[-1, 0], order=[1, 0])
  with pytest.raises(ValueError, match="parent"):
    policy.decode_space([CAT, FLOAT], [2, 0], [0, 1], V, parent=[-1, 1])
  with pytest.raises(ValueError, match="permutation"):
    policy.decode_space([CAT, FLOAT], [2, 0], [0, 1], V, order=[0, 0])


def test_tokens_and_values_round_trip():
  """(kind, levels, unit value, token): bins for floats and > V levels, levels, categories."""
  cases = [(FLOAT, 0, 0.0, 0), (FLOAT, 0, 0.999, V - 1), (FLOAT, 0, 1.0, V - 1), (FLOAT, 0, 0.3, 2),
           (ORD, 5, 0.75, 3), (ORD, 2, 1.0, 1), (ORD, 100, 50 / 99, 4), (CAT, 3, 2.0, 2),
           (CAT, 3, 1.07, 1), (CAT, 3, -0.7, 0), (CAT, 3, 2.6, 2)]  # The prior's perturbed points hold such categories.
  kinds, nv, x, tok = map(np.asarray, zip(*cases))
  got = np.asarray(network.value_tokens(jnp.asarray(x, jnp.float32), kinds, nv, V))
  np.testing.assert_array_equal(got, tok)
  back = np.asarray(policy.token_values(jnp.asarray(tok), 0.5, kinds, nv, V))
  np.testing.assert_array_equal(np.asarray(network.value_tokens(jnp.asarray(back), kinds, nv, V)), tok)
  ordinal = kinds == ORD
  np.testing.assert_allclose(back[ordinal & (nv <= V)], x[ordinal & (nv <= V)])
  np.testing.assert_array_equal(back[kinds == CAT], tok[kinds == CAT])


def test_a_checkpoint_without_a_head_loads_unchanged(tiny_v2_dir):
  """A model saved without a policy head (every checkpoint before it, e.g. v2's step 31000) writes no policy
  fields in its config.json, loads with policy_tokens = 0, and the decoder refuses it by name."""
  from optformer import checkpoint

  model = checkpoint.load_pfn(tiny_v2_dir)
  assert model.config.policy_tokens == 0 and not hasattr(model, "policy_out")
  saved = json.loads((tiny_v2_dir / "config.json").read_text())["model"]
  assert "policy_tokens" not in saved and "value_input" not in saved
  assert model.config.to_dict() == saved  # The new knobs leave a headless config as it was.
  with pytest.raises(ValueError, match="no policy head"):
    policy.sample(model, encoded(model, [FLOAT], [0]), policy.decode_space([FLOAT], [0], [0], 4), 2, jax.random.key(0))


def tiny_policy_train_config(**model):
  from optformer.training import train

  cfg = train.PFNTrainConfig.tiny()
  return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, policy_tokens=V, **model),
                             data=dataclasses.replace(cfg.data, batch_size=8, policy_rows=4, policy_min_queries=2))


@pytest.fixture(scope="module")
def policy_batch():
  """(SurrogateBatch, WithPolicy targets, Examples, tasks) of batch 5 of the tiny prior with 4 policy rows per example."""
  from optformer.training import data

  cfg = tiny_policy_train_config()
  batch, targets, ex, task, _ = data.make_batch(cfg.data, np.asarray(cfg.model.borders), cfg.model.num_slot_ids, 5)
  return batch, targets, ex, task


def test_policy_rows_do_not_change_the_surrogates_predictions(model, policy_batch):
  batch, targets, *_ = policy_batch
  bars, pol = model.with_policy(batch, targets.rows)
  np.testing.assert_allclose(np.asarray(bars), np.asarray(model(batch)), atol=1e-5)
  assert pol.shape == batch.kinds.shape[:1] + (4, batch.kinds.shape[1], V)
  valid = np.asarray(network.token_mask(batch.kinds, batch.num_values, V))[:, None]
  assert np.all((np.asarray(pol) > -1e8) == np.broadcast_to(valid, pol.shape))


@pytest.mark.parametrize("target", ["ei_search", pytest.param("ei", marks=pytest.mark.slow),
                                    pytest.param("best", marks=pytest.mark.slow)])
def test_policy_targets_are_the_behaviour_policys_picks(policy_batch, target):
  from optformer.data_gen import prior as prior_lib
  from optformer.training import data

  batch, targets, ex, task = policy_batch
  if target != "ei_search":
    cfg = dataclasses.replace(tiny_policy_train_config().data, policy_target=target)
    batch, targets, ex, task, _ = data.make_batch(cfg, np.linspace(-3, 3, 9), 8, 5)
  rows = targets.rows
  assert not rows.decoded.all()
  known = np.asarray(batch.context) & ex.feasible
  queries = ~np.asarray(batch.context) & ex.feasible
  best = np.where(known, np.nan_to_num(ex.y), -np.inf).max(1, keepdims=True)
  target_x, target_active = rows.x[:, 0], rows.active[:, 0]
  lat = np.concatenate([ex.latent, np.where(target_active, np.asarray(prior_lib.latent(task, target_x[:, None]))[:, 0],
                                            0.5)[:, None]], 1)
  y = np.concatenate([np.nan_to_num(ex.y), np.zeros((len(ex.y), 1), np.float32)], 1)
  mean, var = data.gp_posterior_batch(task, lat, y, np.concatenate([known, np.zeros((len(y), 1), bool)], 1))
  ei = data.expected_improvement(mean, var, best)  # [B, N + 1]: the example's points, then the target.
  parent = data.conditional_parents(ex)
  for i in np.nonzero(~rows.decoded.all((1, 2)))[0]:
    assert np.all(rows.x[i] == target_x[i]) and np.all(rows.active[i] == target_active[i])  # One target per example.
    if target == "ei_search":  # A valid configuration of higher EI than any of the example's queries but a few.
      assert np.mean(ei[i, -1] >= ei[i, :-1][queries[i]]) >= 0.9
    else:  # One of the example's feasible queries, of the best EI (or f) among them.
      hit = np.nonzero(np.all(ex.x[i] == target_x[i], 1) & np.all(ex.active[i] == target_active[i], 1) & queries[i])[0]
      score = ei[i, :-1] if target == "ei" else ex.f[i]
      assert hit.size and score[hit].max() == pytest.approx(score[queries[i]].max(), rel=1e-6)
    assert rows.decoded[i][:, ex.kinds[i] == 0].all()  # An unused slot counts as decoded.
    for c in np.nonzero(parent[i] >= 0)[0]:  # A child is decoded only with its parent, active iff category 0.
      assert np.all(rows.decoded[i, :, parent[i, c]] | ~rows.decoded[i, :, c])
      assert target_active[i, c] == (target_x[i, parent[i, c]] == 0)


@pytest.mark.parametrize("copy", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_a_few_steps_on_a_batch_lower_the_policy_loss(policy_batch, copy):
  from optformer.training import train
  from optformer.training.step import make_mesh

  cfg = tiny_policy_train_config(policy_copy=copy)
  graphdef, params, tx, opt_state = train.init_state(cfg)
  step = train.make_train_step(graphdef, tx, make_mesh(None), 0.0, 1.0)
  batch, targets, *_ = policy_batch
  assert (~targets.rows.decoded & targets.rows.active).sum() >= 10
  tokens = network.value_tokens(targets.rows.x, batch.kinds[:, None], batch.num_values[:, None], V)
  valid = np.take_along_axis(np.asarray(network.token_mask(batch.kinds, batch.num_values, V))[:, None],
                             np.asarray(tokens)[..., None], -1)[..., 0]
  assert valid[targets.rows.active].all()  # Every target token is one the slot may take.
  losses = []
  for _ in range(8):
    params, opt_state, m = step(params, opt_state, batch, targets)
    losses.append(float(m["policy_loss"]))
    assert np.isfinite(float(m["bar_loss"]))
  assert losses[-1] < 0.8 * losses[0]


def test_a_headless_model_warm_starts_a_run_with_a_policy_head(tmp_path):
  from optformer import checkpoint
  from optformer.training import train

  cfg = tiny_policy_train_config()
  headless = network.create_model(dataclasses.replace(cfg.model, policy_tokens=0), seed=3)
  state = nnx.to_pure_dict(nnx.state(headless))
  src = checkpoint.save(tmp_path / "headless", headless.config, state, metadata={"step": 7, "data_position": 7})
  trainer = train.PFNTrainer(cfg, tmp_path / "run", init_from=src)
  assert trainer.step == 7
  for k, v in state.items():
    jax.tree.map(np.testing.assert_array_equal, trainer.params[k], v)
  assert set(trainer.params) - set(state) == set(train.POLICY_PARAMS) - {"copy_q", "copy_k", "copy_out"}
  with pytest.raises(ValueError, match="another model config"):
    train.PFNTrainer(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, d_model=64)),
                         tmp_path / "run2", init_from=src)


@pytest.mark.slow
@pytest.mark.parametrize("value_input", ["fourier", "tokens"])
def test_both_value_inputs_train_a_step(value_input):
  from optformer.training import data
  from optformer.training import train
  from optformer.training.step import make_mesh

  cfg = tiny_policy_train_config(value_input=value_input)
  graphdef, params, tx, opt_state = train.init_state(cfg)
  assert ("value_token_emb" in params) == (value_input == "tokens")
  step = train.make_train_step(graphdef, tx, make_mesh(None), 0.0, 1.0)
  batch, targets, *_ = data.make_batch(cfg.data, np.asarray(cfg.model.borders), cfg.model.num_slot_ids, 0)
  before = jax.tree.map(np.array, params)
  params, opt_state, m = step(params, opt_state, batch, targets)
  assert np.isfinite(float(m["loss"])) and float(m["policy_loss"]) > 0
  assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(params)))


@pytest.mark.slow
def test_policy_eval_scores_policy_and_uniform_samples_on_held_out_functions(model):
  from optformer.training import policy_eval
  from optformer.training import data

  cfg = dataclasses.replace(data.PFNDataConfig.tiny(), batch_size=2)
  out = policy_eval.evaluate_policy(model, cfg, num_functions=3, trials=5, samples=16)
  per = out["per_function"]
  assert all(len(v) == 3 and np.isfinite(v).all() for v in per.values())
  assert np.all(per["uniform_best_z"] >= 0) and np.all(per["policy_best_z"] >= per["policy_z"])
  assert np.all((per["policy_p_improve"] >= 0) & (per["policy_p_improve"] <= 1))
  assert out["policy_z"][0] == pytest.approx(per["policy_z"].mean()) and out["policy_z"][1] > 0


@pytest.mark.slow
def test_cli_trains_evaluates_and_exports_a_policy_head(tmp_path):
  from optformer import checkpoint
  from optformer.training import train_cli

  argv = ["--workdir", str(tmp_path / "run"), "--preset", "tiny", "--policy-tokens", str(V), "--policy-rows", "2",
          "--steps", "4", "--eval-every", "2", "--warmup", "1", "--export", str(tmp_path / "export"), "--no-progress"]
  assert train_cli.main(argv) == 0
  rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  evals = [r for r in rows if "nll_policy" in r]
  assert [r["step"] for r in evals] == [2, 4] and all(np.isfinite(r["nll_policy"]) for r in evals)
  assert all(r["loss"] == pytest.approx(r["bar_loss"] + r["policy_loss"], rel=1e-5) for r in rows)
  model = checkpoint.load_pfn(tmp_path / "export")
  assert model.config.policy_tokens == V and "numeric tokens" in (tmp_path / "export" / "card.md").read_text()
  with pytest.raises(SystemExit, match="--policy-rows"):
    train_cli.main(argv[:2] + ["--policy-rows", "3"])  # A resume refuses a flag that would change the run.


def test_freeze_surrogate_trains_the_policy_head_only(policy_batch):
  from optformer.training import train
  from optformer.training.train import make_mesh

  cfg = dataclasses.replace(tiny_policy_train_config(), optimizer="adamw", freeze_surrogate=True)
  graphdef, params, tx, opt_state = train.init_state(cfg)
  before = jax.tree.map(np.array, params)
  batch, targets, *_ = policy_batch
  step = train.make_train_step(graphdef, tx, make_mesh(None))
  for _ in range(2):  # The first step's learning rate is 0 (warmup).
    params, opt_state, _ = step(params, opt_state, batch, targets)
  for k in before:
    same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before[k]), jax.tree.leaves(params[k])))
    assert same == (k not in train.POLICY_PARAMS), k
  with pytest.raises(ValueError, match="freeze_surrogate"):
    dataclasses.replace(cfg, optimizer="schedule_free_adamw")
