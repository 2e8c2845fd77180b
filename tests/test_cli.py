"""The `optformer` command in-process (optformer.cli.main) on a tiny saved model v2 (the default family), plus one run
of the console script."""

import csv
import io
import json
import os
import pathlib
import re
import stat
import subprocess
import sys

import numpy as np
import pytest
from flax import nnx

import optformer
from optformer import checkpoint, cli, explain
from optformer.model import network
from optformer.search_space import Categorical, Float, SearchSpace

HEADER = "learning_rate,units,batch_size,optimizer,objective"
TRIALS = f"""{HEADER}
0.001,4,32,adam,1.5
0.01,10,64,sgd,2.25
1e-05,2,16,3,
0.0003,20,128,true,0.75
0.05,7,16,adam,nan
"""
SPACE = """[
 {"type": "float", "name": "learning_rate", "low": 1e-05, "high": 0.1, "log": true},
 {"type": "int", "name": "units", "low": 2, "high": 20, "log": true},
 {"type": "discrete", "name": "batch_size", "values": [16, 32, 64, 128]},
 {"type": "categorical", "name": "optimizer", "choices": ["adam", "sgd", 3, true]}
]
"""
CONFIGS_CSV = "learning_rate,units,batch_size,optimizer\n0.002,5,32,adam\n0.09,19,128,3\n"
CONFIGS_JSON = """[
 {"learning_rate": 0.002, "units": 5, "batch_size": 32, "optimizer": "adam"},
 {"learning_rate": 0.09, "units": 19, "batch_size": 128, "optimizer": 3}
]
"""


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory):
  """A random-init model v2 with PFNConfig.tiny() (8 parameter slots, 8 categories) saved as a checkpoint directory."""
  config = network.PFNConfig.tiny()
  model = network.create_model(config, seed=0)
  return str(checkpoint.save(tmp_path_factory.mktemp("ckpt"), config, nnx.to_pure_dict(nnx.state(model))))


def test_ckpt_is_the_default_model_family(ckpt):
  assert json.loads((pathlib.Path(ckpt) / "config.json").read_text())["format"] == checkpoint.FORMAT_V2
  assert json.loads((checkpoint.DEFAULT_CHECKPOINT / "config.json").read_text())["format"] == checkpoint.FORMAT_V2


def _files(tmp_path, space=SPACE, trials=TRIALS, **extra):
  """Writes space.json, trials.csv and extra name=text files; returns the directory."""
  (tmp_path / "space.json").write_text(space)
  (tmp_path / "trials.csv").write_text(trials)
  for name, text in extra.items():
    (tmp_path / name.replace("_", ".")).write_text(text)
  return tmp_path


def _told(opt):
  """opt after telling it TRIALS through the Python API."""
  for line in TRIALS.splitlines()[1:]:
    *x, y = line.split(",")
    params = dict(zip(["learning_rate", "units", "batch_size"], [float(x[0]), int(x[1]), int(x[2])]))
    opt.tell({**params, "optimizer": {"3": 3, "true": True}.get(x[3], x[3])}, float(y) if y else None)
  return opt


def _main(capsys, d, command, ckpt, *args):
  """Runs `optformer COMMAND --space --history --checkpoint ARGS` in d; returns (exit status, stdout, stderr)."""
  rc = cli.main([command, "--space", str(d / "space.json"), "--history", str(d / "trials.csv"), "--checkpoint", ckpt, *args])
  out, err = capsys.readouterr()
  return rc, out, err


def test_space_file_is_search_space_to_json(tmp_path, mixed_space):
  (tmp_path / "dumped.json").write_text(json.dumps(mixed_space.to_json()))
  assert cli.load_space(tmp_path / "dumped.json") == mixed_space
  assert cli.load_space(_files(tmp_path) / "space.json") == mixed_space


def test_suggest_prints_k_configurations_as_a_json_list(tmp_path, capsys, ckpt, mixed_space):
  d = _files(tmp_path)
  rc, out, err = _main(capsys, d, "suggest", ckpt, "--seed", "0")
  assert rc == 0, err
  configs = json.loads(out)
  assert isinstance(configs, list) and len(configs) == 1
  assert mixed_space.validate(configs[0]) == configs[0]
  rc, out, _ = _main(capsys, d, "suggest", ckpt, "-n", "4", "--seed", "1", "--goal", "maximize")
  batch = json.loads(out)
  assert rc == 0 and len(batch) == 4
  assert len({json.dumps(c, sort_keys=True) for c in batch}) == 4  # diverse
  for c in batch:
    assert mixed_space.validate(c) == c and type(c["units"]) is int and type(c["learning_rate"]) is float
  assert json.loads(_main(capsys, d, "suggest", ckpt, "-n", "4", "--seed", "1", "--goal", "maximize")[1]) == batch


def test_suggest_matches_the_python_api(tmp_path, capsys, ckpt, mixed_space):
  d = _files(tmp_path)
  rc, out, _ = _main(capsys, d, "suggest", ckpt, "-n", "2", "--seed", "5")
  opt = _told(optformer.Optimizer(mixed_space, model=ckpt, seed=5))
  assert rc == 0 and json.loads(out) == [dict(s) for s in opt.ask(2)]
  assert [t.infeasible for t in opt.trials] == [False, False, True, False, True]


def test_suggest_with_an_empty_history(tmp_path, capsys, ckpt, mixed_space):
  rc, out, err = _main(capsys, _files(tmp_path, trials=HEADER + "\n"), "suggest", ckpt, "-n", "2")
  assert rc == 0, err
  assert all(mixed_space.validate(c) == c for c in json.loads(out))


def test_pending_and_infeasible_status(tmp_path, capsys, ckpt):
  space = json.dumps(SearchSpace([Categorical("c", ("a", "b", "c", "d"))]).to_json())
  trials = "c,objective,status\na,1.0,\nb,,infeasible\nc,,pending\nd,inf,completed\n"
  # a is told, b and d are infeasible, c is pending: every value is taken, so K=1 still returns one of them.
  rc, out, err = _main(capsys, _files(tmp_path, space=space, trials=trials), "suggest", ckpt, "--seed", "0")
  assert rc == 0 and len(json.loads(out)) == 1, err
  trials = "c,objective,status\na,1.0,completed\nb,2.0,COMPLETED\nc,,pending\n"
  rc, out, err = _main(capsys, _files(tmp_path, space=space, trials=trials), "suggest", ckpt, "--seed", "0")
  assert rc == 0 and json.loads(out) == [{"c": "d"}], err  # the pending "c" is not proposed again


@pytest.mark.parametrize("configs", ["configs.csv", "configs.json"])
def test_predict_prints_mean_std_quantiles_ei_pi(tmp_path, capsys, ckpt, mixed_space, configs):
  d = _files(tmp_path, configs_csv=CONFIGS_CSV, configs_json=CONFIGS_JSON)
  rc, out, err = _main(capsys, d, "predict", ckpt, "--configs", str(d / configs), "--quantiles", "0.25,0.5,0.75")
  assert rc == 0, err
  rows = json.loads(out)
  queries = [{"learning_rate": 0.002, "units": 5, "batch_size": 32, "optimizer": "adam"},
             {"learning_rate": 0.09, "units": 19, "batch_size": 128, "optimizer": 3}]
  assert [r["config"] for r in rows] == queries
  dist = _told(optformer.Optimizer(mixed_space, model=ckpt)).predict(queries)
  for i, r in enumerate(rows):
    assert set(r) == {"config", "mean", "std", "quantiles", "expected_improvement", "probability_of_improvement", "p_feasible"}
    assert list(r["quantiles"]) == ["0.25", "0.5", "0.75"]
    np.testing.assert_allclose(r["mean"], dist.mean[i])
    np.testing.assert_allclose(r["std"], dist.std[i])
    np.testing.assert_allclose(r["quantiles"]["0.75"], dist.quantile(0.75)[i])
    np.testing.assert_allclose(r["expected_improvement"], dist.expected_improvement(0.75)[i])  # best = min objective
    np.testing.assert_allclose(r["probability_of_improvement"], dist.cdf(0.75)[i])
    assert r["std"] > 0 and r["quantiles"]["0.25"] < r["quantiles"]["0.5"] < r["quantiles"]["0.75"]


def test_predict_accepts_trials_csv_as_configs_and_default_quantiles(tmp_path, capsys, ckpt):
  d = _files(tmp_path)
  rc, out, _ = _main(capsys, d, "predict", ckpt, "--configs", str(d / "trials.csv"))
  rows = json.loads(out)
  assert rc == 0 and len(rows) == 5 and list(rows[0]["quantiles"]) == ["0.1", "0.5", "0.9"]


def test_out_writes_the_file_atomically_and_nothing_to_stdout(tmp_path, capsys, ckpt):
  d = _files(tmp_path)
  rc, printed, _ = _main(capsys, d, "suggest", ckpt, "-n", "2", "--seed", "3")
  (d / "out").mkdir()
  (d / "out" / "next.json").write_text("old")
  rc, out, err = _main(capsys, d, "suggest", ckpt, "-n", "2", "--seed", "3", "--out", str(d / "out" / "next.json"))
  assert rc == 0 and out == "", err
  assert (d / "out" / "next.json").read_text() == printed
  assert os.listdir(d / "out") == ["next.json"]  # no temporary file left behind
  assert (d / "out" / "next.json").stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_out_writes_through_a_symlink_to_its_target(tmp_path, capsys, ckpt):
  d = _files(tmp_path)
  (d / "real").mkdir()
  (d / "real" / "next.json").write_text("old")
  (d / "real" / "next.json").chmod(0o640)
  (d / "link.json").symlink_to(d / "real" / "next.json")
  (d / "chain.json").symlink_to(d / "link.json")
  rc, out, err = _main(capsys, d, "suggest", ckpt, "--seed", "3", "--out", str(d / "chain.json"))
  assert rc == 0 and out == "", err
  assert (d / "link.json").is_symlink() and (d / "chain.json").is_symlink()  # was replaced by a regular file
  assert len(json.loads((d / "real" / "next.json").read_text())) == 1
  assert (d / "real" / "next.json").stat().st_mode & 0o777 == 0o640  # the target keeps its permissions
  assert sorted(os.listdir(d / "real")) == ["next.json"] and not [p for p in os.listdir(d) if p.endswith(".tmp")]
  (d / "dangling.json").symlink_to(d / "real" / "new.json")  # a link to a file not written yet: the file is created
  rc, out, err = _main(capsys, d, "suggest", ckpt, "--seed", "3", "--out", str(d / "dangling.json"))
  assert rc == 0 and (d / "dangling.json").is_symlink() and (d / "real" / "new.json").read_text() == (d / "real" / "next.json").read_text()


@pytest.mark.parametrize("kind", ["fifo", "link to a fifo", "directory", "device"])
def test_out_refuses_a_target_that_is_not_a_regular_file(tmp_path, capsys, ckpt, kind):
  d = _files(tmp_path)
  if kind == "device":  # never /dev/null itself: a broken write_atomic running as root would replace it
    try:
      os.mknod(d / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
      pytest.skip("making a device node needs root")
    out_path, want = d / "null", "is a character device, not a regular file; refusing to replace it"
  elif kind == "directory":
    out_path, want = d / "dir", "is a directory; expected a file path"
    out_path.mkdir()
  else:
    os.mkfifo(d / "fifo")
    out_path, want = d / "fifo", "is a FIFO, not a regular file; refusing to replace it"
    if kind.startswith("link"):
      (d / "link").symlink_to(d / "fifo")
      out_path = d / "link"
  rc, out, err = _main(capsys, d, "suggest", ckpt, "--out", str(out_path))
  assert rc == 2 and out == "" and err.count("\n") == 1, err
  assert err == f"optformer suggest: error: {out_path}: --out: {want}.\n"
  if kind != "device":
    assert (d / "fifo").exists() == ("fifo" in kind) and (not (d / "fifo").exists() or stat.S_ISFIFO(os.stat(d / "fifo").st_mode))
  assert not [p for p in os.listdir(d) if p.endswith(".tmp")]


def test_categorical_cells_are_read_exactly(tmp_path, capsys, ckpt):
  """Choices that differ by spaces, commas or quotes survive a trials.csv written by Python's csv module."""
  choices = ["a", " a", "a ", "b, c", 'say "hi"', 3, True]
  space = SearchSpace([Categorical("c", choices), Float("x", 0.0, 1.0)])
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator="\n")
  writer.writerow(["c", "x", "objective"])
  writer.writerows([[json.dumps(c) if not isinstance(c, str) else c, 0.1 * i, float(i)] for i, c in enumerate(choices)])
  d = _files(tmp_path, space=json.dumps(space.to_json()), trials=buf.getvalue())
  rc, out, err = _main(capsys, d, "predict", ckpt, "--configs", str(d / "trials.csv"))
  assert rc == 0, err
  assert [r["config"]["c"] for r in json.loads(out)] == choices  # " a" was read as "a"
  # Hand-written spaces around a value still read as the choice they surround, when no choice holds them.
  (d / "configs.csv").write_text('c, x\n"b, c", 0.5\n  3 , 0.5\n true,0.5\n')
  rc, out, err = _main(capsys, d, "predict", ckpt, "--configs", str(d / "configs.csv"))
  assert rc == 0, err
  assert [r["config"]["c"] for r in json.loads(out)] == ["b, c", 3, True]


def test_explain_refuses_a_space_beyond_its_limit_before_creating_out(tmp_path, capsys, ckpt, monkeypatch):
  """Beyond explain's exact-Shapley limit (16, lowered to 3 here so that the tiny model takes the space): the error
  names space.json and the limit, and --out is not created (it was left empty, and trials.csv was blamed)."""
  pytest.importorskip("matplotlib")
  monkeypatch.setattr(explain.shapley, "MAX_PLAYERS", 3)
  rng = np.random.default_rng(0)
  rows = [f"{10 ** rng.uniform(-5, -1)},{rng.integers(2, 21)},{rng.choice([16, 32, 64, 128])},adam,{rng.normal()}" for _ in range(8)]
  d = _files(tmp_path, trials=HEADER + "\n" + "\n".join(rows) + "\n")
  rc = cli.main(["explain", "--space", str(d / "space.json"), "--history", str(d / "trials.csv"), "--checkpoint", ckpt,
                 "--out", str(d / "report")])
  out, err = capsys.readouterr()
  assert rc == 2 and out == "" and err.count("\n") == 1, err
  assert err.startswith(f"optformer explain: error: {d / 'space.json'}: the search space has 4 parameters; optformer "
                        "explain computes exact Shapley values over all 2^D coalitions and supports at most 3."), err
  assert not (d / "report").exists()


def _umask():
  mask = os.umask(0)
  os.umask(mask)
  return mask


def _space_with(*lines):
  return "[\n" + ",\n".join(lines) + "\n]\n"


FLOAT_X = ' {"type": "float", "name": "x", "low": 0, "high": 1}'

# (case, files to write {name: text}, extra arguments, regex the error message must match)
BAD_INPUTS = [
    ("space: bad JSON", {"space.json": '[\n {"type": "float",, "name": "x"}\n]'}, [], r"space\.json:2: invalid JSON"),
    ("space: not a list", {"space.json": '{"type": "float"}'}, [], r"space\.json:1: expected a JSON list of parameters"),
    ("space: empty", {"space.json": "[]"}, [], r"space\.json:1: the search space needs at least one parameter"),
    ("space: unknown kind", {"space.json": _space_with(FLOAT_X, ' {"type": "flaot", "name": "y"}')}, [],
     r"space\.json:3: field 'type': parameter #1: unknown type 'flaot'"),
    ("space: unknown field", {"space.json": _space_with(FLOAT_X, ' {"type": "int", "name": "k",\n  "lo": 0, "high": 3}')}, [],
     r"space\.json:4: field 'lo': parameter #1: unknown field for type 'int'"),
    ("space: missing field", {"space.json": _space_with(' {"type": "float", "name": "x", "low": 0}')}, [],
     r"space\.json:2: field 'high': parameter #0 \(type 'float'\) is missing 'high'"),
    ("space: low >= high", {"space.json": _space_with(' {"type": "float", "name": "x",\n  "low": 2,\n  "high": 1}')}, [],
     r"space\.json:3: field 'low': parameter #0 \('x'\): low=2 must be < high=1"),
    ("space: log not a bool", {"space.json": _space_with(' {"type": "float", "name": "x", "low": 1, "high": 2, "log": "yes"}')}, [],
     r"space\.json:2: field 'log': parameter #0: expected true or false, got 'yes'"),
    ("space: one choice", {"space.json": _space_with(FLOAT_X, ' {"type": "categorical", "name": "c",\n  "choices": ["a"]}')}, [],
     r"space\.json:4: field 'choices': parameter #1 \('c'\): needs at least 2 choices"),
    ("space: duplicate name", {"space.json": _space_with(FLOAT_X, ' {"type": "int",\n  "name": "x", "low": 0, "high": 3}')}, [],
     r"space\.json:4: field 'name': duplicate parameter name 'x' \(also parameter #0\)"),
    ("space: duplicate key", {"space.json": _space_with(' {"type": "float", "name": "x", "low": 0, "high": 1, "low": 0.5}')}, [],
     r"space\.json:2: field 'low': appears twice"),
    ("trials: empty file", {"trials.csv": ""}, [], r"trials\.csv:1: empty file"),
    ("trials: no objective column", {"trials.csv": "learning_rate,units,batch_size,optimizer\n0.001,4,32,adam\n"}, [],
     r"trials\.csv:1: field 'objective': missing column"),
    ("trials: missing parameter column", {"trials.csv": "learning_rate,batch_size,optimizer,objective\n0.001,32,adam,1\n"}, [],
     r"trials\.csv:1: field 'units': missing column"),
    ("trials: unknown column", {"trials.csv": HEADER + ",momentum\n0.001,4,32,adam,1.0,0.9\n"}, [],
     r"trials\.csv:1: field 'momentum': unknown column"),
    ("trials: duplicate column", {"trials.csv": HEADER + ",units\n0.001,4,32,adam,1.0,4\n"}, [],
     r"trials\.csv:1: field 'units': the column appears twice"),
    ("trials: non-numeric cell", {"trials.csv": HEADER + "\n0.001,4,32,adam,1.0\n\n0.001,four,32,adam,1.0\n"}, [],
     r"trials\.csv:4: field 'units': 'four' is not a number"),
    ("trials: empty numeric cell", {"trials.csv": HEADER + "\n,4,32,adam,1.0\n"}, [],
     r"trials\.csv:2: field 'learning_rate': '' is not a number"),
    ("trials: out of bounds", {"trials.csv": HEADER + "\n0.001,4,32,adam,1.0\n0.5,4,32,adam,1.0\n"}, [],
     r"trials\.csv:3: field 'learning_rate': value 0.5 is outside \[1e-05, 0.1\]"),
    ("trials: int not an integer", {"trials.csv": HEADER + "\n0.001,4.5,32,adam,1.0\n"}, [],
     r"trials\.csv:2: field 'units': expected an int, got 4.5"),
    ("trials: discrete value not in the set", {"trials.csv": HEADER + "\n0.001,4,48,adam,1.0\n"}, [],
     r"trials\.csv:2: field 'batch_size': value 48 is not one of \[16, 32, 64, 128\]"),
    ("trials: unknown category", {"trials.csv": HEADER + "\n0.001,4,32,lion,1.0\n"}, [],
     r"trials\.csv:2: field 'optimizer': 'lion' is not one of \['adam', 'sgd', 3, True\]"),
    ("trials: non-numeric objective", {"trials.csv": HEADER + "\n0.001,4,32,adam,good\n"}, [],
     r"trials\.csv:2: field 'objective': 'good' is not a number \(leave it empty"),
    ("trials: wrong number of fields", {"trials.csv": HEADER + "\n0.001,4,32,adam,1.0\n0.001,4,32,adam\n"}, [],
     r"trials\.csv:3: 4 fields, but the header \(line 1\) has 5"),
    ("trials: unknown status", {"trials.csv": HEADER + ",status\n0.001,4,32,adam,1.0,done\n"}, [],
     r"trials\.csv:2: field 'status': 'done' is not one of \['completed', 'infeasible', 'pending'\]"),
    ("trials: pending with objective", {"trials.csv": HEADER + ",status\n0.001,4,32,adam,1.0,pending\n"}, [],
     r"trials\.csv:2: field 'objective': a pending trial has no objective"),
    ("trials: line after a quoted line break", {"trials.csv": HEADER + '\n0.001,4,32,adam,"1.0\n"\n0.001,4,32,lion,1\n'}, [],
     r"trials\.csv:4: field 'optimizer': 'lion'"),
    ("trials: quoted line break in the header", {"trials.csv": '"learning\n_rate",units\n'}, [],
     r"trials\.csv:1: field 'learning\\n_rate': unknown column"),
    ("space: too many parameters", {"space.json": json.dumps(SearchSpace([Float(f"x{i}", 0.0, 1.0) for i in range(9)]).to_json()),
                                    "trials.csv": ",".join(f"x{i}" for i in range(9)) + ",objective\n"}, [],
     r"space\.json: The search space has 9 parameters"),
    ("history: no feasible trial", {"trials.csv": HEADER + "\n0.001,4,32,adam,\n", "configs.csv": CONFIGS_CSV}, ["predict"],
     r"trials\.csv: predict needs at least one feasible trial"),
    ("configs.json: unknown parameter", {"configs.json": '[\n {"learning_rate": 0.002, "units": 5, "batch_size": 32,\n  "optimizer": "adam", "momentum": 0.9}\n]'},
     ["predict"], r"configs\.json:3: field 'momentum': configuration #0: unknown parameter"),
    ("configs.json: out of range", {"configs.json": '[\n {"learning_rate": 0.002, "units": 5, "batch_size": 32, "optimizer": "adam"},\n'
                                                    ' {"learning_rate": 0.002,\n  "units": 50, "batch_size": 32, "optimizer": "adam"}\n]'},
     ["predict"], r"configs\.json:4: field 'units': configuration #1: value 50 is outside \[2, 20\]"),
    ("configs.json: missing parameter", {"configs.json": '[{"learning_rate": 0.002, "units": 5, "batch_size": 32}]'},
     ["predict"], r"configs\.json:1: field 'optimizer': configuration #0 is missing this parameter"),
    ("configs.csv: bad category", {"configs.csv": CONFIGS_CSV + "0.002,5,32,lion\n"}, ["predict"],
     r"configs\.csv:4: field 'optimizer': 'lion' is not one of"),
    ("configs: other extension", {"configs.txt": CONFIGS_CSV}, ["predict"], r"configs\.txt: expected a \.csv or \.json file"),
    ("configs: missing file", {}, ["predict", "nothere.csv"], r"nothere\.csv: cannot read the file: No such file"),
    ("checkpoint: not a model directory", {}, ["bad-checkpoint"], r"is missing 'config\.json'"),
    ("space: nested 100,000 deep", {"space.json": "[" * 100_000 + "]" * 100_000}, [],
     r"space\.json:1: invalid JSON: nested too deeply"),
    ("configs.json: nested 100,000 deep", {"configs.json": "[" * 100_000 + "]" * 100_000}, ["predict"],
     r"configs\.json:1: invalid JSON: nested too deeply"),
    ("trials: a row of empty fields", {"trials.csv": HEADER + "\n0.001,4,32,adam,1.0\n,,,,\n"}, [],
     r"trials\.csv:3: field 'learning_rate': '' is not a number"),
    ("trials: a short row of empty fields", {"trials.csv": HEADER + "\n0.001,4,32,adam,1.0\n,,\n"}, [],
     r"trials\.csv:3: 3 fields, but the header \(line 1\) has 5"),
    ("trials: objective overflows float64", {"trials.csv": HEADER + "\n0.001,4,32,adam,1.0\n0.001,4,32,sgd,1e400\n"}, [],
     r"trials\.csv:3: field 'objective': '1e400' overflows float64"),
    ("trials: objective beyond 1e150", {"trials.csv": HEADER + "\n0.001,4,32,adam,1.0\n0.001,4,32,sgd,-2e200\n"}, [],
     r"trials\.csv:3: field 'objective': The objective -2e\+200 is beyond \+-1e\+150"),
    ("out: no such directory", {}, ["out-in-missing-dir"], r"no/such/dir/out\.json: --out: the directory does not exist"),
    ("space: a parameter named status", {"space.json": _space_with(FLOAT_X, ' {"type": "float",\n  "name": "status", "low": 0, "high": 1}')},
     [], r"space\.json:4: field 'name': parameter #1: the name 'status' is taken by a column of trials\.csv"),
    ("space: a parameter named objective", {"space.json": _space_with(' {"type": "int", "name": "objective", "low": 0, "high": 3}')},
     [], r"space\.json:2: field 'name': parameter #0: the name 'objective' is taken by a column of trials\.csv"),
    ("space: a name with surrounding spaces", {"space.json": _space_with(' {"type": "float", "name": " x ", "low": 0, "high": 1}')},
     [], r"space\.json:2: field 'name': parameter #0 \(' x '\): Parameter name ' x ' has leading or trailing whitespace"),
    ("space: choices 1 and '1'", {"space.json": _space_with(' {"type": "categorical", "name": "c",\n  "choices": [1, "1", "b"]}')},
     [], r"space\.json:3: field 'choices': parameter #0 \('c'\): choices '1' and 1 read the same from a CSV cell"),
    ("space: choices true and 'true'", {"space.json": _space_with(' {"type": "categorical", "name": "c", "choices": [true, "true"]}')},
     [], r"choices 'true' and True read the same"),
    ("space: choices null and ' None'", {"space.json": _space_with(' {"type": "categorical", "name": "c", "choices": [" None", null]}')},
     [], r"choices ' None' and None read the same"),
    ("space: choices 2.5 and '2.50'", {"space.json": _space_with(' {"type": "categorical", "name": "c", "choices": [2.5, "2.50"]}')},
     [], r"choices '2\.50' and 2\.5 read the same"),
    ("trials: a quoted field after a space", {"trials.csv": HEADER + '\n0.001, 4, 32, "adam", 1.0\n'}, [],
     r"trials\.csv:2: field 'optimizer': ' \"adam\"' is not one of .* \(a quoted field must start right after the comma"),
]


@pytest.mark.parametrize("case, files, extra, message", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_malformed_input_exits_2_with_a_located_message_and_writes_nothing(tmp_path, capsys, ckpt, case, files, extra, message):
  d = _files(tmp_path)
  for name, text in files.items():
    (d / name).write_text(text)
  out_path = d / "out.json"
  command, args = "suggest", []
  if extra and extra[0] == "predict":
    configs = extra[1] if len(extra) > 1 else next(n for n in files if n.startswith("configs"))
    command, args = "predict", ["--configs", str(d / configs)]
  if extra == ["bad-checkpoint"]:
    ckpt = str(d)
  if extra == ["out-in-missing-dir"]:
    out_path = d / "no" / "such" / "dir" / "out.json"
  rc, out, err = _main(capsys, d, command, ckpt, *args, "--out", str(out_path))
  assert rc == 2
  assert out == ""
  assert err.startswith(f"optformer {command}: error: ") and err.count("\n") == 1, err
  assert re.search(message, err), err
  assert not out_path.exists()
  assert not [p for p in d.iterdir() if p.name.startswith(".out.json")]


@pytest.mark.parametrize(
    "args, message",
    [
        (["-n", "0"], "argument -n: expected an integer >= 1, got '0'"), (["-n", "two"], "expected an integer >= 1, got 'two'"),
        (["--goal", "max"], "argument --goal: expected minimize, maximize, or a comma-separated list of them, got 'max'"),
        (["--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),  # blamed space.json
        (["--seed", "1.5"], "argument --seed: expected an integer >= 0, got '1.5'"),
    ],
)
def test_bad_command_line_exits_2_with_one_line_naming_the_flag(tmp_path, capsys, ckpt, args, message):
  with pytest.raises(SystemExit) as e:
    _main(capsys, _files(tmp_path), "suggest", ckpt, *args)
  err = capsys.readouterr().err
  assert e.value.code == 2 and err.count("\n") == 1, err
  assert err.startswith("optformer suggest: error: ") and message in err and "(see optformer suggest -h)" in err, err


@pytest.mark.parametrize("quantiles, bad", [("0,0.5,1", "0"), ("0.5,1", "1"), ("1.5", "1.5"), ("0.1,,0.9", ""), ("a", "a"),
                                            ("nan", "nan"), ("-0.1", "-0.1")])
def test_bad_quantiles_exit_2_with_one_line_naming_the_level_and_the_range(tmp_path, capsys, ckpt, quantiles, bad):
  d = _files(tmp_path, configs_csv=CONFIGS_CSV)
  with pytest.raises(SystemExit) as e:  # 0 and 1 were accepted here and raised from bar.py (a traceback)
    _main(capsys, d, "predict", ckpt, "--configs", str(d / "configs.csv"), "--quantiles", quantiles)
  err = capsys.readouterr().err
  assert e.value.code == 2 and err.count("\n") == 1, err
  assert f"argument --quantiles: expected comma-separated levels strictly between 0 and 1, in (0, 1)" in err, err
  assert err.rstrip().endswith(f"got {bad!r} (see optformer predict -h)"), err


def _version_line(capsys) -> str:
  """What `optformer --version` prints (it exits 0)."""
  with pytest.raises(SystemExit) as e:
    cli.main(["--version"])
  assert e.value.code == 0
  return capsys.readouterr().out


def test_version_prints_the_package_version(capsys, monkeypatch):
  import importlib.metadata
  import tomllib

  assert _version_line(capsys) == f"optformer {importlib.metadata.version('optformer')}\n"

  def not_installed(name):
    raise importlib.metadata.PackageNotFoundError(name)

  monkeypatch.setattr(importlib.metadata, "version", not_installed)  # a source tree that is not installed
  pyproject = tomllib.loads((pathlib.Path(cli.__file__).resolve().parent.parent / "pyproject.toml").read_text())
  assert _version_line(capsys) == f"optformer {pyproject['project']['version']}\n"


def test_console_script(tmp_path, ckpt):
  script = pathlib.Path(sys.executable).parent / "optformer"
  if not script.exists():
    pytest.skip("the optformer console script is not installed (pip install -e .)")
  d = _files(tmp_path)
  run = subprocess.run(
      [str(script), "suggest", "--space", str(d / "space.json"), "--history", str(d / "trials.csv"), "-n", "2",
       "--checkpoint", ckpt, "--out", str(d / "next.json")],
      capture_output=True, text=True, timeout=300,
  )
  assert run.returncode == 0, run.stderr
  assert run.stdout == "" and len(json.loads((d / "next.json").read_text())) == 2


def test_a_truncated_checkpoint_exits_2_with_one_line(tmp_path, ckpt):
  """A params file cut short under a manifest that matches it: orbax fails mid-read (no "Event loop is closed" noise)."""
  import shutil
  bad = tmp_path / "ckpt"
  shutil.copytree(ckpt, bad)
  data = max((p for p in (bad / "params").rglob("*") if p.is_file() and "/d/" in p.as_posix()), key=lambda p: p.stat().st_size)
  data.write_bytes(data.read_bytes()[:100])
  checkpoint._write_manifest(bad)  # so that only orbax's read finds the truncation
  d = _files(tmp_path)
  run = subprocess.run(
      [sys.executable, "-m", "optformer.cli", "suggest", "--space", str(d / "space.json"), "--history", str(d / "trials.csv"),
       "--checkpoint", str(bad), "--no-compilation-cache"],
      capture_output=True, text=True, timeout=300,
  )
  assert run.returncode == 2 and run.stdout == ""
  assert run.stderr.count("\n") == 1 and "Event loop is closed" not in run.stderr, run.stderr
  assert re.match(rf"optformer suggest: error: {re.escape(str(bad))}: Cannot read parameters", run.stderr), run.stderr


@pytest.mark.parametrize("flag, expected", [([], True), (["--no-compilation-cache"], False)])
def test_no_compilation_cache_flag_reaches_the_optimizer(tmp_path, capsys, ckpt, monkeypatch, flag, expected):
  seen = []

  def spy(*args, **kwargs):
    seen.append(kwargs["compilation_cache"])
    return optformer.Optimizer(*args, **{**kwargs, "compilation_cache": False})

  monkeypatch.setattr(cli, "Optimizer", spy)
  rc, out, err = _main(capsys, _files(tmp_path), "suggest", ckpt, *flag)
  assert rc == 0, err
  assert seen == [expected] and len(json.loads(out)) == 1


def test_reads_spreadsheet_style_csv_bom_crlf_and_spaces(tmp_path, capsys, ckpt):
  trials = "\ufeff" + TRIALS.replace(",", ", ").replace("\n", "\r\n") + "\r\n"
  d = _files(tmp_path)
  (d / "trials.csv").write_bytes(trials.encode("utf-8"))
  rc, out, err = _main(capsys, d, "predict", ckpt, "--configs", str(d / "trials.csv"))
  assert rc == 0, err
  assert [r["config"]["optimizer"] for r in json.loads(out)] == ["adam", "sgd", 3, True, "adam"]
