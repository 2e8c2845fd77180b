"""The built wheel: everything under the optformer namespace, the shipped models as package data.

`.ci/wheel_smoke` installs the wheel into a fresh environment and runs it; this test checks
the wheel's contents against the checkout, without installing anything.
"""

import json
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

from optformer import checkpoint

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHIPPED = ("optformer-v2",)
IGNORED = (".git", ".venv", "build", "runs", "results", "corpus", "*.egg-info", "__pycache__", ".pytest_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
  """(file names in the wheel, its entry_points.txt)."""
  out = tmp_path_factory.mktemp("dist")
  # Built from a copy: an in-tree build/ left by an earlier layout would leak stale modules in.
  src = tmp_path_factory.mktemp("src") / "optformer"
  shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*IGNORED))
  subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(src)],
                 check=True, capture_output=True, timeout=300)
  (wheel,) = out.glob("optformer-*.whl")
  with zipfile.ZipFile(wheel) as z:
    names = set(z.namelist())
    (entry,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    return names, z.read(entry).decode()


@pytest.fixture(scope="module")
def wheel_names(wheel):
  return wheel[0]


def test_every_module_is_under_the_optformer_namespace(wheel_names):
  top = {n.split("/")[0] for n in wheel_names if not n.split("/")[0].endswith(".dist-info")}
  assert top == {"optformer"}
  for folder, package in (("data_gen", "optformer/data_gen"), ("training", "optformer/training"),
                          ("eval", "optformer/eval"), ("optformer", "optformer")):
    sources = {p.relative_to(ROOT / folder).as_posix() for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts}
    assert sources, folder
    assert {f"{package}/{s}" for s in sources} <= wheel_names, folder


def test_the_shipped_models_are_package_data_with_every_manifest_file(wheel_names):
  for name in SHIPPED:
    manifest = json.loads((ROOT / "checkpoints" / name / "manifest.json").read_text())
    want = {f"optformer/checkpoints/{name}/{f}" for f in [*manifest, "manifest.json", "card.md"]}
    assert want <= wheel_names, sorted(want - wheel_names)[:5]
    # Nothing else from the model directory: an extra file would fail the manifest check.
    have = {n for n in wheel_names if n.startswith(f"optformer/checkpoints/{name}/")}
    assert have == want, sorted(have - want)[:5]


def test_entry_points_name_installed_modules(wheel):
  wheel_names, entry_points = wheel
  lines = entry_points.split("[console_scripts]")[1].strip().splitlines()
  scripts = dict(line.split(" = ") for line in lines if " = " in line)
  assert set(scripts) == {"optformer", "optformer-gen", "optformer-train"}
  for module in (v.split(":")[0] for v in scripts.values()):
    assert f"{module.replace('.', '/')}.py" in wheel_names, module


def test_the_default_checkpoint_is_found_in_the_checkout():
  assert checkpoint.DEFAULT_CHECKPOINT == checkpoint.V2_CHECKPOINT == ROOT / "checkpoints" / "optformer-v2"
  assert (checkpoint.DEFAULT_CHECKPOINT / "config.json").is_file()
  assert sorted(p.name for p in (ROOT / "checkpoints").iterdir() if p.is_dir()) == list(SHIPPED)  # v1 was retired.
