"""The `optformer` command on constrained and multi-objective trials.csv files, and space.json files with forbidden
clauses, constants, defaults and ordered categoricals (in-process, on the tiny saved model of conftest)."""

import json
import re

import pytest

import optformer
from optformer import cli

SPACE = """[
 {"type": "categorical", "name": "kernel", "choices": ["linear", "poly"]},
 {"type": "int", "name": "degree", "low": 1, "high": 5, "condition": {"parent": "kernel", "values": ["poly"]}},
 {"type": "float", "name": "x", "low": 0.0, "high": 1.0, "default": 0.5},
 {"type": "categorical", "name": "size", "choices": ["s", "m", "l"], "ordered": true},
 {"type": "constant", "name": "seed", "value": 3},
 {"type": "forbidden", "values": {"kernel": ["poly"], "degree": [5]}}
]
"""
ROWS = [  # kernel, degree, x, size
    ("linear", "", 0.1, "s"), ("poly", 2, 0.5, "m"), ("poly", 4, 0.9, "l"), ("linear", "", 0.7, "m"),
    ("poly", 1, 0.3, "s"),
]


def _write(tmp_path, header, lines, space=SPACE):
  (tmp_path / "space.json").write_text(space)
  (tmp_path / "trials.csv").write_text(",".join(header) + "\n" + "".join(",".join(map(str, l)) + "\n" for l in lines))
  return tmp_path


def _run(capsys, d, ckpt, command="suggest", *args):
  rc = cli.main([command, "--space", str(d / "space.json"), "--history", str(d / "trials.csv"), "--checkpoint",
                 str(ckpt), *args])
  out, err = capsys.readouterr()
  return rc, out, err


def _params(row):
  kernel, degree, x, size = row
  return {"kernel": kernel, **({"degree": degree} if degree != "" else {}), "x": x, "size": size}


def test_space_json_keeps_forbidden_clauses_constants_defaults_and_order(tmp_path):
  d = _write(tmp_path, ["kernel", "degree", "x", "size", "objective"], [])
  space = cli.load_space(d / "space.json")
  assert space.constants == {"seed": 3} and space["x"].default == 0.5 and space["size"].ordered
  assert space.forbidden == (optformer.Forbidden({"kernel": "poly", "degree": 5}),)
  assert optformer.SearchSpace.from_json(json.loads(json.dumps(space.to_json()))) == space


def test_constraint_columns_are_told_as_constraints(tmp_path, capsys, tiny_v2_dir):
  constraints = [(0.5, -1.0), (-0.2, -0.1), (-1.0, 0.3), (-0.5, -0.5), (0.0, -2.0)]
  lines = [(*r, (r[2] - 0.3) ** 2, *c) for r, c in zip(ROWS, constraints)]
  d = _write(tmp_path, ["kernel", "degree", "x", "size", "objective", "constraint_1", "constraint_2"], lines)
  rc, out, err = _run(capsys, d, tiny_v2_dir, "suggest", "--seed", "4", "-n", "2")
  assert rc == 0, err
  opt = optformer.Optimizer(cli.load_space(d / "space.json"), model=str(tiny_v2_dir), seed=4)
  for line in lines:
    opt.tell(_params(line[:4]), line[4], constraints=line[5:])
  assert [t.infeasible for t in opt.trials] == [True, False, True, False, False]
  assert json.loads(out) == [dict(s) for s in opt.ask(2)]
  assert all(not (s["kernel"] == "poly" and s["degree"] == 5) for s in json.loads(out))


def test_several_objective_columns_make_a_multi_objective_study(tmp_path, capsys, tiny_v2_dir):
  lines = [(*r, r[2], 1 - r[2] ** 2) for r in ROWS]
  d = _write(tmp_path, ["kernel", "degree", "x", "size", "objective_1", "objective_2"], lines)
  rc, out, err = _run(capsys, d, tiny_v2_dir, "suggest", "--goal", "minimize,maximize", "--seed", "1")
  assert rc == 0, err
  opt = optformer.Optimizer(cli.load_space(d / "space.json"), ["minimize", "maximize"], model=str(tiny_v2_dir), seed=1)
  for line in lines:
    opt.tell(_params(line[:4]), list(line[4:]))
  dists = opt.predict([_params(ROWS[0]), _params(ROWS[1])])  # Before ask: its pending trial enters the context.
  assert json.loads(out) == [dict(opt.ask())]
  (d / "configs.json").write_text(json.dumps([_params(ROWS[0]), _params(ROWS[1])]))
  rc, out, err = _run(capsys, d, tiny_v2_dir, "predict", "--goal", "minimize,maximize", "--configs",
                      str(d / "configs.json"), "--quantiles", "0.5")
  assert rc == 0, err
  result = json.loads(out)
  assert len(result) == 2 and all(len(r["mean"]) == 2 and len(r["quantiles"]["0.5"]) == 2 for r in result)
  assert result[1]["mean"] == pytest.approx([float(dists[0].mean[1]), float(dists[1].mean[1])], rel=1e-6)


@pytest.mark.parametrize(
    "header, lines, goal, message",
    [
        (["kernel", "degree", "x", "size", "objective"], [("poly", 5, 0.1, "s", 1.0)], "minimize",
         r"trials.csv:2: .*forbidden by the clause \"kernel == 'poly' and degree == 5\""),
        (["kernel", "degree", "x", "size", "objective_1"], [ROWS[0] + (1.0,)], "minimize,maximize",
         r"field 'objective_2': missing column"),
        (["kernel", "degree", "x", "size", "objective_1"], [ROWS[0] + (1.0,)], "minimize",
         r"field 'objective_1': unexpected column for 1 objective\(s\)"),
        (["kernel", "degree", "x", "size", "objective"], [ROWS[0] + (1.0,)], "minimize,maximize",
         r"field 'objective': unexpected column"),
        (["kernel", "degree", "x", "size", "objective_1", "objective_2", "objective_3"], [ROWS[0] + (1.0, 2.0, 3.0)],
         "minimize,maximize", r"field 'objective_3': unexpected column"),
        (["kernel", "degree", "x", "size", "objective", "constraint_2"], [ROWS[0] + (1.0, 0.0)], "minimize",
         r"constraint columns must be constraint_1, ..., constraint_J"),
        (["kernel", "degree", "x", "size", "objective", "constraint_1"], [ROWS[0] + (1.0, "")], "minimize",
         r"trials.csv:2: field 'constraint_1': a completed trial needs every constraint"),
        (["kernel", "degree", "x", "size", "objective", "constraint_1"], [ROWS[0] + (1.0, "high")], "minimize",
         r"trials.csv:2: field 'constraint_1': 'high' is not a number"),
        (["kernel", "degree", "x", "size", "objective_1", "objective_2"], [ROWS[0] + (1.0, "x")], "minimize,maximize",
         r"trials.csv:2: field 'objective_2': 'x' is not a number"),
    ],
)
def test_bad_columns_exit_2_with_a_located_message(tmp_path, capsys, tiny_v2_dir, header, lines, goal, message):
  d = _write(tmp_path, header, lines)
  rc, out, err = _run(capsys, d, tiny_v2_dir, "suggest", "--goal", goal)
  assert rc == 2 and out == "" and re.search(message, err), err


@pytest.mark.parametrize(
    "space, message",
    [
        ('[{"type": "float", "name": "constraint_1", "low": 0, "high": 1}]', "taken by a column of trials.csv"),
        ('[{"type": "float", "name": "x", "low": 0, "high": 1},\n {"type": "forbidden", "values": {"y": [1]}}]',
         r"space.json:2: field 'forbidden': .*unknown parameter"),
        ('[{"type": "float", "name": "x", "low": 0, "high": 1},\n {"type": "constant", "name": "x", "value": 1}]',
         r"space.json:2: field 'constant': .*naming no parameter"),
    ],
)
def test_bad_space_items_exit_2_naming_the_line(tmp_path, capsys, tiny_v2_dir, space, message):
  d = _write(tmp_path, ["x", "objective"], [], space=space)
  rc, out, err = _run(capsys, d, tiny_v2_dir)
  assert rc == 2 and re.search(message, err), err


def test_explain_refuses_several_objectives(tmp_path, capsys, tiny_v2_dir):
  d = _write(tmp_path, ["kernel", "degree", "x", "size", "objective_1", "objective_2"], [ROWS[0] + (1.0, 2.0)])
  rc = cli.main(["explain", "--space", str(d / "space.json"), "--history", str(d / "trials.csv"), "--checkpoint",
                 str(tiny_v2_dir), "--goal", "minimize,maximize", "--out", str(d / "out")])
  assert rc == 2 and "explain takes one objective" in capsys.readouterr().err
