"""Every example in README.md and docs/*.md runs as written.

Each fenced ```python, ```bash or ```sh block of those files is one test.
An HTML comment on the line just before a fence (invisible when rendered)
says how to treat the block:

  <!-- test: skip REASON -->      not run (network, installs, or the command under test itself)
  <!-- test: as NAME -->          a python block whose namespace later blocks can continue
  <!-- test: continue [NAME] -->  a python block that runs in the namespace of block NAME (default: the
                                  file's previous python block), e.g. an example that uses `opt` from above
  <!-- test: parse-only REASON --> each `python -m MODULE ARGS` line is only parsed: MODULE's argparse
                                  must accept ARGS (for commands that train or benchmark for minutes)
  <!-- test: output -->           a ```json block: the printed output of the previous bash block, compared
                                  value by value (numbers to rtol 1e-3; a "..." entry ends a list early)

Python blocks run in-process (so the shipped model compiles once for all of
them) with the working directory in a temporary folder; bash blocks run in
a temporary folder that links `examples`, `checkpoints` and `docs` of the
checkout and `.venv` to the running interpreter's environment, so commands
like `.venv/bin/optformer ...` run as a user types them and write nothing
into the checkout. A fence without a language (diagrams, CSV, transcripts)
is not code.

These tests compile and run the shipped model for minutes in all, so they
are marked slow (`make test-slow`; CI runs them).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import math
import os
import pathlib
import re
import runpy
import shlex
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINKED = ("examples", "checkpoints", "docs")  # Folders of the checkout the examples read.
_DIRECTIVE = re.compile(r"^<!--\s*test:\s*(skip|continue|parse-only|output|as)\b\s*(.*?)\s*-->\s*$")
_FENCE = re.compile(r"^```\s*([\w+-]*)\s*$")


@dataclasses.dataclass(frozen=True)
class Block:
  """One fenced block: where it is, its language, its text and the directive before it (or "")."""

  path: pathlib.Path
  line: int  # 1-based line of the opening fence.
  lang: str
  code: str
  directive: str = ""
  reason: str = ""

  @property
  def name(self) -> str:
    return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: pathlib.Path) -> list[Block]:
  """The fenced blocks of a Markdown file, in order.

  Raises:
    ValueError: an unclosed fence, or a directive that is not followed by a fence.
  """
  lines = path.read_text(encoding="utf-8").splitlines()
  out, i = [], 0
  while i < len(lines):
    m = _FENCE.match(lines[i])
    if not m:
      d = _DIRECTIVE.match(lines[i].strip())
      if d and not (i + 1 < len(lines) and _FENCE.match(lines[i + 1])):
        raise ValueError(f"{path}:{i + 1}: a test directive must be on the line just before a fence.")
      i += 1
      continue
    end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
    if end is None:
      raise ValueError(f"{path}:{i + 1}: unclosed fence.")
    d = _DIRECTIVE.match(lines[i - 1].strip()) if i else None
    out.append(Block(path, i + 1, m.group(1).lower(), "\n".join(lines[i + 1:end]) + "\n",
                     d.group(1) if d else "", d.group(2) if d else ""))
    i = end + 1
  return out


ALL = [b for f in FILES for b in blocks(f)]
CODE = [b for b in ALL if b.lang in ("python", "bash", "sh")]


def test_the_examples_are_found():
  """The parser sees the README's examples (an empty list would make every other test vacuous)."""
  readme = [b for b in CODE if b.path.name == "README.md"]
  assert sum(b.lang == "python" for b in readme) >= 6, [b.name for b in readme]
  assert any("OptFormerSampler" in b.code for b in readme)
  assert all(b.reason for b in CODE if b.directive in ("skip", "parse-only", "as")), "a skip needs a reason"
  named = {(b.path, b.reason) for b in CODE if b.directive == "as"}
  for b in CODE:  # Every `continue NAME` follows a block `as NAME` of the same file.
    assert b.directive != "continue" or not b.reason or (b.path, b.reason) in named, b.name


def test_directives_parse(tmp_path):
  md = tmp_path / "x.md"
  md.write_text("text\n<!-- test: skip needs the network -->\n```bash\npip install x\n```\n"
                "<!-- test: as first -->\n```python\nprint(1)\n```\n<!-- test: continue first -->\n```python\nprint(2)\n```\n")
  got = blocks(md)
  assert [(b.lang, b.directive, b.reason, b.code) for b in got] == [
      ("bash", "skip", "needs the network", "pip install x\n"), ("python", "as", "first", "print(1)\n"),
      ("python", "continue", "first", "print(2)\n")]
  md.write_text("<!-- test: skip why -->\n\n```bash\nls\n```\n")
  with pytest.raises(ValueError, match="just before a fence"):
    blocks(md)


def _workdir(tmp_path: pathlib.Path) -> pathlib.Path:
  for name in LINKED:
    (tmp_path / name).symlink_to(ROOT / name)
  (tmp_path / ".venv").symlink_to(pathlib.Path(sys.prefix))
  return tmp_path


# (file, NAME) -> the namespace of the block named NAME; (file, "") -> that of the file's last python block.
_NAMESPACES: dict[tuple[pathlib.Path, str], dict] = {}


def _run_python(block: Block, cwd: pathlib.Path, capsys) -> None:
  """Runs a python block in-process with cwd as the working directory; what it prints is discarded."""
  namespace = {"__name__": "__main__"}
  if block.directive == "continue":
    if (block.path, block.reason) not in _NAMESPACES:
      pytest.fail(f"{block.name}: 'continue {block.reason}' but that block did not run (or failed)")
    namespace = dict(_NAMESPACES[block.path, block.reason])
  _NAMESPACES.pop((block.path, ""), None)
  old = os.getcwd()
  os.chdir(cwd)
  try:
    exec(compile(block.code, block.name, "exec"), namespace)
  finally:
    os.chdir(old)
  _NAMESPACES[block.path, ""] = namespace
  if block.directive == "as":
    _NAMESPACES[block.path, block.reason] = namespace
  capsys.readouterr()


def _commands(code: str) -> list[str]:
  """Shell command lines of a block, with backslash continuations joined."""
  return [c for c in re.sub(r"\\\n\s*", " ", code).splitlines() if c.strip() and not c.lstrip().startswith("#")]


class _Parsed(Exception):
  """Raised in place of running a module once its argparse accepted the arguments."""


def _parse_only(command: str) -> None:
  """Checks that `python -m MODULE ARGS...` names a module whose argument parser accepts ARGS."""
  words = shlex.split(command, comments=True)
  if words[:2] != ["python", "-m"] or len(words) < 3:
    pytest.fail(f"parse-only handles `python -m MODULE ARGS` lines, got {command!r}")
  original = argparse.ArgumentParser.parse_args

  def parse_then_stop(self, args=None, namespace=None):
    original(self, args, namespace)
    raise _Parsed

  argv = sys.argv
  sys.argv = words[2:]
  argparse.ArgumentParser.parse_args = parse_then_stop
  try:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
      runpy.run_module(words[2], run_name="__main__", alter_sys=False)
  except _Parsed:
    return
  except SystemExit as e:
    pytest.fail(f"`{command}`: the module's parser refused its arguments (exit {e.code}): {err.getvalue()[-400:]}")
  finally:
    argparse.ArgumentParser.parse_args = original
    sys.argv = argv
  pytest.fail(f"`{command}`: the module ran without parsing arguments")


_OUTPUTS: dict[pathlib.Path, str] = {}  # File -> stdout of its last bash block (for "output").


def _matches(got, want, where="") -> list[str]:
  """Differences between printed JSON `got` and the documented `want` (numbers to rtol 1e-3)."""
  if isinstance(want, dict):
    if not isinstance(got, dict) or set(got) != set(want):
      return [f"{where}: keys {sorted(got) if isinstance(got, dict) else got!r} != {sorted(want)}"]
    return [d for k in want for d in _matches(got[k], want[k], f"{where}.{k}")]
  if isinstance(want, list):
    cut = want.index("...") if "..." in want else None
    if not isinstance(got, list) or (len(got) != len(want) if cut is None else len(got) < cut):
      return [f"{where}: {got!r:.200} has another length than {want!r:.200}"]
    return [d for i, w in enumerate(want[:cut]) for d in _matches(got[i], w, f"{where}[{i}]")]
  if isinstance(want, float) or (isinstance(want, int) and isinstance(got, float)):
    ok = isinstance(got, (int, float)) and math.isclose(got, want, rel_tol=1e-3, abs_tol=1e-9)
    return [] if ok else [f"{where}: {got!r} != {want!r}"]
  return [] if got == want else [f"{where}: {got!r} != {want!r}"]


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in ALL if b.directive == "output" or b.lang in ("python", "bash", "sh")],
                         ids=lambda b: b.name)
def test_example(block, tmp_path, capsys):
  if block.directive == "skip":
    pytest.skip(block.reason)
  if block.directive == "output":
    if block.path not in _OUTPUTS:
      pytest.fail(f"{block.name}: an output block whose command block did not run")
    want = json.loads(re.sub(r"^\s*\.\.\.\s*$", '"..."', block.code, flags=re.M))
    diffs = _matches(json.loads(_OUTPUTS[block.path]), want)
    assert not diffs, f"{block.name}: the documented output is stale: {diffs[:5]}"
    return
  if block.directive == "parse-only":
    for command in _commands(block.code):
      _parse_only(command)
    return
  cwd = _workdir(tmp_path)
  if block.lang == "python":
    _run_python(block, cwd, capsys)
    return
  env = dict(os.environ, PATH=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
  out = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=600)
  assert out.returncode == 0, f"{block.name} exited {out.returncode}:\n{out.stderr[-2000:]}"
  _OUTPUTS[block.path] = out.stdout
