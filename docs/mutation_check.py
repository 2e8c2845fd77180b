"""Mutation check of the default path's tests: each mutation must make at least one test fail.

Each mutation is (file, old snippet, new snippet): a small, plausible bug of the default path (model v2, no
prior, the acquisition search). For each, the checkout is copied to a temporary directory (the working tree
itself is never touched: other engineers edit it), the snippet is replaced in the copy (exactly one
occurrence, else the script stops with an error naming the snippet: the source moved on and the mutation
needs updating), and the mutation's test files run there with the copy first on sys.path. The package is
installed editable with package-dir mappings (optformer.eval -> eval/, ...), so the copy links those
subpackages into its optformer/ and each run prints `optformer.__file__` and checks it is the copy's.

  .venv/bin/python docs/mutation_check.py            # every mutation (docs/mutations.md lists them)
  .venv/bin/python docs/mutation_check.py argmax     # those whose name contains "argmax"
  .venv/bin/python docs/mutation_check.py --baseline # also run the unmutated copy (must pass)
  .venv/bin/python docs/mutation_check.py p-feasible -k avoids  # only tests matching pytest's -k expression

Prints one line per mutation, "killed" (a test failed; pytest stops at the first failure) or "survived",
and exits 1 if any survived.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
# pyproject.toml's [tool.setuptools.package-dir]: subpackages that live outside optformer/.
SUBPACKAGES = {"data_gen": "data_gen", "training": "training", "eval": "eval", "checkpoints": "checkpoints"}
SKIP = {".git", ".venv", "snapshots", "runs", "results", "corpus", "__pycache__", ".pytest_cache", "checkpoints"}
# The fast public-API test files the mutations are checked against (the shipped-model files are slow).
TESTS = ("tests/test_acquisition_search.py", "tests/test_optimizer.py", "tests/test_optimizer_features.py",
         "tests/test_pfn_optimizer.py", "tests/test_surrogate.py")


@dataclasses.dataclass(frozen=True)
class Mutation:
  name: str
  file: str  # relative to the checkout
  old: str
  new: str
  what: str
  tests: tuple = TESTS


MUTATIONS = [
    Mutation(
        "search-random-fresh", "optformer/acquisition_search.py",
        "  i = int(np.argmax(ranked))\n",
        "  i = int(rng.choice(np.flatnonzero(ranked > -np.inf)))\n",
        "the acquisition search returns a random fresh candidate instead of the argmax",
    ),
    Mutation(
        "no-prior-score-zero", "optformer/designer.py",
        "    if self.prior is None:\n      return score\n",
        "    if self.prior is None:\n      return np.zeros_like(score)\n",
        "the acquisition score is 0 when there is no prior (the default path)",
    ),
    Mutation(
        "ei-without-p-feasible", "optformer/model/posterior.py",
        "    return pred.log_expected_improvement_z(best) + log_feasible\n",
        "    return pred.log_expected_improvement_z(best)\n",
        "p(feasible) dropped from EI",
    ),
    Mutation(
        "fantasy-zero", "optformer/designer.py",
        "    means = self.backend.condition(base).mean(pend)\n",
        "    means = np.zeros(len(pend))\n",
        "pending-trial fantasies are 0 instead of the predicted mean (kriging believer)",
    ),
    Mutation(
        "ei-inverted", "optformer/model/posterior.py",
        "    return pred.log_expected_improvement_z(best) + log_feasible\n",
        "    return -(pred.log_expected_improvement_z(best) + log_feasible)\n",
        "the EI ranking inverted",
    ),
]


def copy_checkout(dest: pathlib.Path) -> pathlib.Path:
  """A copy of the checkout's sources in dest/optformer-copy (checkpoints linked, subpackages linked in)."""
  copy = dest / "optformer-copy"
  shutil.copytree(ROOT, copy, ignore=lambda d, names: [n for n in names if n in SKIP])
  (copy / "checkpoints").symlink_to(ROOT / "checkpoints")  # 14 MB of weights, read only.
  for sub, where in SUBPACKAGES.items():
    if not (copy / "optformer" / sub).exists():
      (copy / "optformer" / sub).symlink_to(copy / where)
  return copy


def apply(copy: pathlib.Path, m: Mutation) -> None:
  path = copy / m.file
  text = path.read_text()
  count = text.count(m.old)
  if count != 1:
    raise SystemExit(f"mutation {m.name}: {m.file} holds the snippet {m.old!r} {count} times, expected once; "
                     "update the mutation to the current source.")
  path.write_text(text.replace(m.old, m.new))


def run_tests(copy: pathlib.Path, tests, log: pathlib.Path, select: str | None = None) -> tuple[bool, str]:
  """(passed, optformer.__file__ as imported) of `pytest -x tests` in the copy."""
  env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
  probe = subprocess.run([sys.executable, "-c", "import optformer, optformer.eval; print(optformer.__file__); "
                          "print(optformer.eval.__file__)"], cwd=copy, env=env, capture_output=True, text=True)
  where = probe.stdout.split()
  if probe.returncode or not all(pathlib.Path(w).resolve().is_relative_to(copy.resolve()) for w in where):
    raise SystemExit(f"the copy is not the package imported: {probe.stdout} {probe.stderr}")
  with open(log, "w") as out:
    rc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
                        + (["-k", select] if select else []), cwd=copy,
                        env=env, stdout=out, stderr=subprocess.STDOUT).returncode
  return rc == 0, where[0]


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("names", nargs="*", help="run only mutations whose name contains one of these")
  parser.add_argument("--baseline", action="store_true", help="first run the unmutated copy (must pass)")
  parser.add_argument("--logs", default=None, help="keep the pytest logs in this directory")
  parser.add_argument("-k", dest="select", default=None, help="run only the tests matching this pytest -k expression")
  args = parser.parse_args(argv)
  chosen = [m for m in MUTATIONS if not args.names or any(n in m.name for n in args.names)]
  logs = pathlib.Path(args.logs or tempfile.mkdtemp(prefix="mutation-logs-"))
  logs.mkdir(parents=True, exist_ok=True)
  survived = []
  with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
    if args.baseline:
      copy = copy_checkout(pathlib.Path(tmp) / "baseline")
      ok, where = run_tests(copy, TESTS, logs / "baseline.log", args.select)
      print(f"baseline: {'passed' if ok else 'FAILED'} ({where}; log {logs / 'baseline.log'})", flush=True)
      if not ok:
        return 2
    for m in chosen:
      t = time.time()
      base = pathlib.Path(tmp) / m.name
      base.mkdir()
      copy = copy_checkout(base)
      apply(copy, m)
      ok, where = run_tests(copy, m.tests, logs / f"{m.name}.log", args.select)
      failed = [line for line in (logs / f"{m.name}.log").read_text().splitlines() if line.startswith("FAILED")]
      print(f"{m.name}: {'SURVIVED' if ok else 'killed'} in {time.time() - t:.0f} s ({m.what}; imported {where})"
            + (f"\n  by {failed[0][7:]}" if failed else ""), flush=True)
      if ok:
        survived.append(m.name)
      shutil.rmtree(base)
  print(f"{len(chosen) - len(survived)}/{len(chosen)} killed" + (f"; survived: {survived}" if survived else ""))
  return 1 if survived else 0


if __name__ == "__main__":
  sys.exit(main())
