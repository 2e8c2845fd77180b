"""study_files.write_atomic, the one writer of --out, Optimizer.save and checkpoint files: links, special files, and
the temporary files of killed writes."""

import os
import pathlib
import re
import signal
import stat
import subprocess
import sys
import time

import pytest

from optformer import study_files
from optformer.study_files import write_atomic


def _temps(directory):
  return sorted(p.name for p in pathlib.Path(directory).iterdir() if p.name.endswith(".tmp"))


def _dead_pid():
  """The pid of a process that has exited (and been reaped)."""
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


def _age(path, seconds):
  t = time.time() - seconds
  os.utime(path, (t, t))


def test_writes_the_text_and_leaves_no_temporary_file(tmp_path):
  write_atomic(tmp_path / "a.json", "one")
  write_atomic(tmp_path / "a.json", "two")
  assert (tmp_path / "a.json").read_text() == "two" and os.listdir(tmp_path) == ["a.json"]


def test_writes_through_a_chain_of_links_and_keeps_the_links_and_the_mode(tmp_path):
  (tmp_path / "d").mkdir()
  (tmp_path / "d" / "study.json").write_text("old")
  (tmp_path / "d" / "study.json").chmod(0o600)
  (tmp_path / "link").symlink_to("d/study.json")  # relative, as `ln -s` writes it
  (tmp_path / "link2").symlink_to(tmp_path / "link")
  write_atomic(tmp_path / "link2", "new")
  assert (tmp_path / "link").is_symlink() and (tmp_path / "link2").is_symlink()
  assert (tmp_path / "d" / "study.json").read_text() == "new"
  assert stat.S_IMODE((tmp_path / "d" / "study.json").stat().st_mode) == 0o600
  assert _temps(tmp_path) == [] and _temps(tmp_path / "d") == []


@pytest.mark.parametrize("kind", ["fifo", "directory", "link to a fifo"])
def test_refuses_a_target_that_is_not_a_regular_file_and_leaves_it(tmp_path, kind):
  if kind == "directory":
    (tmp_path / "t").mkdir()
    error, message = IsADirectoryError, "is a directory"
  else:
    os.mkfifo(tmp_path / "t")
    error, message = OSError, "is a FIFO, not a regular file; refusing to replace it"
  path = tmp_path / "t"
  if kind.startswith("link"):
    (tmp_path / "link").symlink_to(path)
    path = tmp_path / "link"
  with pytest.raises(error, match=message) as e:
    write_atomic(path, "text")
  assert e.value.filename == str(path)
  mode = os.lstat(tmp_path / "t").st_mode
  assert stat.S_ISDIR(mode) if kind == "directory" else stat.S_ISFIFO(mode)  # a FIFO became a regular file
  assert _temps(tmp_path) == []


def _special_file(path, kind):
  """Makes a socket or a character device (the null device, when allowed: root) at path, never touching /dev."""
  if kind == "socket":
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    return sock
  try:
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
  except PermissionError:
    pytest.skip("making a device node needs root")


@pytest.mark.parametrize("kind, name", [("socket", "a socket"), ("device", "a character device")])
def test_refuses_a_socket_or_a_device(tmp_path, kind, name):
  keep = _special_file(tmp_path / "t", kind)
  with pytest.raises(OSError, match=f"is {name}, not a regular file") as e:
    write_atomic(tmp_path / "t", "text")
  assert e.value.filename == str(tmp_path / "t") and name in e.value.strerror
  mode = os.lstat(tmp_path / "t").st_mode
  assert stat.S_ISSOCK(mode) if kind == "socket" else stat.S_ISCHR(mode)
  if keep is not None:
    keep.close()


def test_removes_the_leftovers_of_killed_writes_and_keeps_live_ones(tmp_path):
  dead, live = _dead_pid(), os.getpid()
  stale = tmp_path / f".study.json.{dead}.abc123xy.tmp"  # a write killed a while ago: removed
  young = tmp_path / f".study.json.{dead}.young123.tmp"  # too recent to judge (maybe another host's): kept
  running = tmp_path / f".study.json.{live}.run12345.tmp"  # its writer still runs: kept
  other = tmp_path / f".other.json.{dead}.abc123xy.tmp"  # another file's: kept
  for p in (stale, young, running, other):
    p.write_text("partial")
  for p in (stale, running, other):
    _age(p, 3600)
  write_atomic(tmp_path / "study.json", "{}")
  assert _temps(tmp_path) == sorted(p.name for p in (young, running, other))
  assert (tmp_path / "study.json").read_text() == "{}"


def test_temporary_file_name_is_recognisable(tmp_path, monkeypatch):
  seen = []
  real_replace = os.replace

  def spy(src, dst):
    seen.append(pathlib.Path(src).name)
    real_replace(src, dst)

  monkeypatch.setattr(os, "replace", spy)
  write_atomic(tmp_path / ("x" * 250), "text")  # a long name still leaves room for the temporary file's
  assert re.fullmatch(rf"\.{'x' * 100}\.{os.getpid()}\.[a-z0-9_]+\.tmp", seen[0]), seen
  assert _temps(tmp_path) == []


def test_an_interrupted_write_removes_its_temporary_file_and_keeps_the_old_text(tmp_path, monkeypatch):
  (tmp_path / "a.json").write_text("old")

  def interrupted(*args):
    raise KeyboardInterrupt

  monkeypatch.setattr(os, "fsync", interrupted)
  with pytest.raises(KeyboardInterrupt):
    write_atomic(tmp_path / "a.json", "new")
  assert (tmp_path / "a.json").read_text() == "old" and _temps(tmp_path) == []


def test_a_write_killed_with_sigkill_leaves_one_named_temporary_file_that_the_next_write_removes(tmp_path):
  code = (
      "import os, sys, time\n"
      "from optformer import study_files\n"
      "os.replace = lambda *a: (print('ready', flush=True), time.sleep(600))\n"  # killed between write and rename
      "study_files.write_atomic(sys.argv[1], 'partial')\n"
  )
  proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "study.json")], stdout=subprocess.PIPE, text=True)
  try:
    assert proc.stdout.readline() == "ready\n"
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  left = _temps(tmp_path)
  assert len(left) == 1 and re.fullmatch(rf"\.study\.json\.{proc.pid}\.[a-z0-9_]+\.tmp", left[0]), left
  assert not (tmp_path / "study.json").exists()
  _age(tmp_path / left[0], 3600)
  write_atomic(tmp_path / "study.json", "{}")
  assert _temps(tmp_path) == [] and (tmp_path / "study.json").read_text() == "{}"


def test_replaceable_target_follows_links(tmp_path):
  (tmp_path / "link").symlink_to(tmp_path / "missing.json")
  target, st = study_files.replaceable_target(tmp_path / "link")
  assert target == (tmp_path / "missing.json").resolve() and st is None
