"""Cold start: the persistent compilation cache (on, off, unwritable) and what `import optformer` loads.

The cache is process-wide JAX state, so the tests that turn it on or check
what a fresh process writes run in a subprocess with the tiny model.
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap
import warnings

import pytest

import optformer
from optformer import compilation_cache
from optformer.search_space import Float, SearchSpace

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Two ask/tell rounds with the tiny model: compiles the history encoding and scoring (history bucket 8).
_STUDY = """
import json, sys, jax, optformer
from optformer.model.network import PFNConfig, create_model
space = optformer.SearchSpace([optformer.Float("x", 0.0, 1.0), optformer.Int("n", 1, 9)])
opt = optformer.Optimizer(space, model=create_model(PFNConfig.tiny(), seed=0), seed=0, num_candidates=8,
                          compilation_cache=CACHE)
for _ in range(2):
  p = opt.ask()
  opt.tell(p, (p["x"] - 0.3) ** 2 + p["n"])
print(json.dumps({"jax_dir": jax.config.jax_compilation_cache_dir}))
"""


def _run(code: str, tmp_path: pathlib.Path) -> dict:
  """Runs `code` in a fresh interpreter with HOME and XDG_CACHE_HOME inside tmp_path; returns its last stdout line as JSON."""
  env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE") and k != "JAX_ENABLE_COMPILATION_CACHE"}
  env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "xdg"), PYTHONPATH=str(ROOT))
  out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 0, out.stderr
  return json.loads(out.stdout.strip().splitlines()[-1])


def _entries(directory: pathlib.Path) -> list[str]:
  return sorted(p.name for p in directory.rglob("*-cache")) if directory.exists() else []


@pytest.mark.slow
def test_cache_in_a_given_directory_gets_the_model_compilations(tmp_path):
  cache = tmp_path / "cache"
  out = _run(_STUDY.replace("CACHE", repr(str(cache))), tmp_path)
  assert out["jax_dir"] == str(cache)
  names = _entries(cache)
  assert any(n.startswith("jit__encode-") for n in names), names
  assert any(n.startswith("jit__score-") for n in names), names
  assert not (tmp_path / "xdg").exists()  # Nothing in the default directory.


@pytest.mark.slow
def test_default_cache_is_under_xdg_cache_home(tmp_path):
  _run(_STUDY.replace("CACHE", "True"), tmp_path)
  assert any(n.startswith("jit__score-") for n in _entries(tmp_path / "xdg" / "optformer" / "jax"))


@pytest.mark.slow
@pytest.mark.parametrize("prelude, cache", [
    ("", "False"),
    ("import optformer; optformer.compilation_cache.disable()\n", "True"),  # disable() outlasts the default.
], ids=["compilation_cache=False", "disable()"])
def test_cache_off_writes_no_entries(tmp_path, prelude, cache):
  out = _run(prelude + _STUDY.replace("CACHE", cache), tmp_path)
  assert out["jax_dir"] is None
  assert _entries(tmp_path) == []


@pytest.mark.slow
def test_default_keeps_a_directory_the_caller_gave_jax(tmp_path):
  mine = tmp_path / "mine"
  # The caller's settings are kept as given, threshold included: JAX's default (1 s) would keep no entry of the
  # tiny model's sub-second compilations, so the caller here asks for every compilation.
  code = (f"import jax; jax.config.update('jax_compilation_cache_dir', {str(mine)!r}); "
          "jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)\n") + _STUDY.replace("CACHE", "True")
  out = _run(code, tmp_path)
  assert out["jax_dir"] == str(mine)
  assert any(n.startswith("jit__score-") for n in _entries(mine)), _entries(mine)
  assert not (tmp_path / "xdg").exists()


def test_unwritable_cache_directory_warns_once_and_still_suggests(tmp_path, tiny_v2_model):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  space = SearchSpace([Float("x", 0.0, 1.0)])
  with pytest.warns(RuntimeWarning, match="cannot use .* as the JAX compilation cache"):
    opt = optformer.Optimizer(space, model=tiny_v2_model, seed=0, num_candidates=8, compilation_cache=blocker / "jax")
  params = opt.ask()
  assert 0.0 <= params["x"] <= 1.0
  opt.tell(params, params["x"])
  assert 0.0 <= opt.ask()["x"] <= 1.0
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # Once per directory: a second optimizer is silent.
    optformer.Optimizer(space, model=tiny_v2_model, seed=0, num_candidates=8, compilation_cache=blocker / "jax")


def test_default_dir_follows_an_absolute_xdg_cache_home(monkeypatch, tmp_path):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  assert compilation_cache.default_dir() == tmp_path / "optformer" / "jax"
  monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # Not absolute: ignored, as the XDG spec says.
  assert compilation_cache.default_dir() == pathlib.Path.home() / ".cache" / "optformer" / "jax"
  monkeypatch.delenv("XDG_CACHE_HOME")
  assert compilation_cache.default_dir() == pathlib.Path.home() / ".cache" / "optformer" / "jax"


_HEAVY = ("jax", "jaxlib", "flax", "orbax", "orbax.checkpoint", "scipy.stats", "torch", "optuna", "matplotlib")


def test_import_optformer_and_the_search_space_api_import_no_jax_flax_or_orbax(tmp_path):
  code = f"""
import json, sys, optformer
space = optformer.SearchSpace([optformer.Float("x", 1e-3, 1.0, log=True), optformer.Categorical("c", ("a", "b"))])
config = space.sample(__import__("numpy").random.default_rng(0))
assert space.validate(config) == config and space.to_unit(config).shape == (2,)
optformer.SearchConfig(); optformer.priors.Normal(0.1, 0.2)
import contextlib, io, optformer.cli
with contextlib.redirect_stdout(io.StringIO()) as out:  # `optformer --version` loads no model either.
  try:
    optformer.cli.main(["--version"])
  except SystemExit as e:
    assert e.code in (0, None), e.code
assert out.getvalue().startswith("optformer "), out.getvalue()
print(json.dumps(sorted(m for m in {_HEAVY!r} if m in sys.modules)))
"""
  assert _run(code, tmp_path) == []


def test_jax_based_names_resolve_on_first_use():
  assert issubclass(optformer.CheckpointError, ValueError)
  assert optformer.checkpoint.CheckpointError is optformer.CheckpointError  # Submodules import on first use.
  assert "CheckpointError" in dir(optformer)
  with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
    optformer.no_such_name  # noqa: B018


def test_optimizer_checks_the_shipped_model_without_jax_and_its_empty_study_suggests_without_it(tmp_path):
  code = f"""
import json, sys, optformer
space = optformer.SearchSpace([optformer.Float(f"x{{i}}", -5.0, 5.0) for i in range(3)])
opt = optformer.Optimizer(space, seed=0)
first, second = opt.ask(), opt.ask()  # Uniform samples: no model, also with a pending trial.
errors = []
try:
  opt.predict([first])  # No feasible trial: refused before any model is needed.
except ValueError as e:
  errors.append(str(e))
s = opt.backend
limits = [s.capabilities.max_params, s.capabilities.max_categories, s.capabilities.max_context]
import optformer.integrations.optuna as oo
sampler = oo.OptFormerSampler()  # Builds a probe Optimizer for the same limits.
print(json.dumps({{"heavy": sorted(m for m in {_HEAVY!r} if m in sys.modules and m != "optuna"), "limits": limits,
                  "distinct": first != second, "errors": errors, "loaded": s.loaded,
                  "sampler": [sampler._max_params, sampler._max_categories]}}))
"""
  out = _run(code, tmp_path)
  assert out["heavy"] == [] and out["loaded"] is False, out
  assert out["limits"] == [64, 64, 256] and out["sampler"] == [64, 64] and out["distinct"]
  assert len(out["errors"]) == 1 and "feasible trial" in out["errors"][0]


def test_construction_errors_come_from_the_config_without_jax(tmp_path):
  """Too many parameters, a categorical beyond max_categories, candidates="policy" (the shipped model has no
  policy), a corrupt and a retired (model v1) checkpoint fail at Optimizer(...) with the model's limits read from
  config.json alone."""
  code = f"""
import json, shutil, sys, optformer
from optformer import checkpoint
F, C = optformer.Float, optformer.Categorical
cases = {{
    "params": lambda: optformer.Optimizer(optformer.SearchSpace([F(f"x{{i}}", 0.0, 1.0) for i in range(65)])),
    "categories": lambda: optformer.Optimizer(optformer.SearchSpace([C("c", tuple(range(65)))])),
    "policy": lambda: optformer.Optimizer(optformer.SearchSpace([F("x", 0.0, 1.0)]), candidates="policy"),
}}
bad = __import__("pathlib").Path(shutil.copytree(checkpoint.DEFAULT_CHECKPOINT, "bad"))
(bad / "params" / "_METADATA").write_bytes(b"{{}}")
cases["corrupt"] = lambda: optformer.Optimizer(optformer.SearchSpace([F("x", 0.0, 1.0)]), model=bad)
v1 = __import__("pathlib").Path("v1")
v1.mkdir()
(v1 / "config.json").write_text(json.dumps({{"model": {{"max_trials": 64, "algorithms": ["random"]}}}}))
cases["retired"] = lambda: optformer.Optimizer(optformer.SearchSpace([F("x", 0.0, 1.0)]), model=v1)
out = {{}}
for name, build in cases.items():
  try:
    build()
    out[name] = None
  except ValueError as e:  # CheckpointError is a ValueError.
    out[name] = [type(e).__name__, str(e)]
print(json.dumps({{"errors": out, "heavy": sorted(m for m in {_HEAVY!r} if m in sys.modules)}}))
"""
  out = _run(code, tmp_path)
  errors = out["errors"]
  assert out["heavy"] == [], out
  assert errors["params"][0] == "ValueError"
  assert "65 parameters" in errors["params"][1] and "at most 64" in errors["params"][1]
  assert "'c' has 65 choices" in errors["categories"][1] and "at most 64" in errors["categories"][1]
  assert errors["policy"] is None  # The shipped model has a policy head: valid, and still no JAX at construction.
  assert errors["corrupt"][0] == "CheckpointError" and "params/_METADATA has 2 bytes" in errors["corrupt"][1], errors
  assert errors["retired"][0] == "CheckpointError" and "retired" in errors["retired"][1], errors
  assert "optformer-v2" in errors["retired"][1], errors


@pytest.mark.slow
def test_the_shipped_model_loads_on_first_use_and_suggests_in_a_fresh_process(tmp_path):
  code = """
import json, sys, optformer
space = optformer.SearchSpace([optformer.Float(f"x{i}", -5.0, 5.0) for i in range(3)])
before = "jax" in sys.modules
opt = optformer.Optimizer(space, seed=0, compilation_cache=str(__import__("pathlib").Path.cwd() / "cache"))
built = "jax" in sys.modules
p = opt.ask()
first = "jax" in sys.modules
opt.tell(p, sum(v * v for v in p.values()))
p = opt.ask()  # A feasible trial: the model is loaded and scores the candidates.
loaded = "jax" in sys.modules and opt.backend.loaded
for _ in range(3):
  opt.tell(p, sum(v * v for v in p.values()))
  p = opt.ask()
print(json.dumps({"before": before, "built": built, "first": first, "loaded": loaded,
                  "context": opt.backend.capabilities.max_context, "ok": all(-5.0 <= v <= 5.0 for v in opt.ask().values()),
                  "model": opt.to_json()["model"],
                  "cached": any(__import__("pathlib").Path("cache").rglob("*-cache"))}))
"""
  out = _run(code, tmp_path)
  assert out == {"before": False, "built": False, "first": False, "loaded": True, "context": 256,
                 "ok": True, "model": "shipped:optformer-v2", "cached": True}


@pytest.fixture(scope="module")
def tiny_v2_dir(tmp_path_factory):
  """A tiny random-init model v2 saved as a checkpoint (8 parameter slots: the cold-start study's 8 Floats)."""
  from flax import nnx

  from optformer import checkpoint
  from optformer.model import network

  model = network.create_model(network.PFNConfig.tiny(), seed=0)
  return checkpoint.save(tmp_path_factory.mktemp("tiny_v2"), model.config, nnx.to_pure_dict(nnx.state(model)))


@pytest.mark.slow
def test_latency_cold_start_times_each_step_in_fresh_processes(tiny_v2_dir):
  from optformer.eval import latency

  res = latency.cold_start(str(tiny_v2_dir), repeats=1, with_gp=True)
  steps = {"import_s", "optimizer_s", "first_ask_s", "rounds_s", "spawn_to_first_suggestion_s"}
  rows = [*res["optformer"].values(), *res["gpsampler"].values()]
  assert set(res["optformer"]) == {"cold_cache", "empty", "history_10"} and set(res["gpsampler"]) == {"empty", "history_10"}
  for r in rows:
    assert set(r) == steps and all(v >= 0 for v in r.values()), r
    # The spawn-to-suggestion clock includes the interpreter's start, the import and building the optimizer.
    assert r["spawn_to_first_suggestion_s"] >= r["import_s"] + r["optimizer_s"] - 0.01, r
    assert r["rounds_s"] >= r["first_ask_s"]
  assert res["optformer"]["empty"]["rounds_s"] > 0 and res["gpsampler"]["history_10"]["first_ask_s"] > 0
  table = latency.cold_start_markdown({"cold_start": res})
  assert table.count("| optformer |") == 3 and table.count("| GPSampler |") == 2


@pytest.mark.slow
def test_latency_predict_times_optimizer_predict_and_the_gp_posterior(tiny_v2_dir):
  from optformer.eval import latency

  res = latency.predict_5000(str(tiny_v2_dir), history=8, num_points=64, repeats=1)
  assert res["history"] == 8 and res["num_points"] == 64
  assert res["optformer"]["first_s"] > 0 and res["optformer"]["median_s"] > 0
  g = res["gpsampler"]
  assert g["fit_s"] > 0 and g["posterior_s"] > 0 and g["total_s"] == pytest.approx(g["fit_s"] + g["posterior_s"], abs=2e-4)
  assert "GPSampler's GP" in latency.cold_start_markdown({"predict_5000": res})


def test_parameters_orbax_cannot_read_raise_checkpoint_error_on_first_use(tiny_v2_dir, tmp_path):
  """A params file cut short under a manifest regenerated to match it passes construction's checks (manifest and
  config); reading the parameters, on the first call that needs the model, raises CheckpointError."""
  import shutil

  from optformer import checkpoint

  bad = pathlib.Path(shutil.copytree(tiny_v2_dir, tmp_path / "bad"))
  data = max((p for p in (bad / "params").rglob("*") if p.is_file() and "/d/" in p.as_posix()),
             key=lambda p: p.stat().st_size)
  data.write_bytes(data.read_bytes()[:100])
  checkpoint._write_manifest(bad)
  opt = optformer.Optimizer(SearchSpace([Float("x", 0.0, 1.0)]), model=bad, seed=0, compilation_cache=False)
  opt.tell(opt.ask(), 0.5)  # The first suggestion needs no model.
  assert not opt.backend.loaded
  with pytest.raises(checkpoint.CheckpointError, match="Cannot read parameters"):
    opt.ask()
