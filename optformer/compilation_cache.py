"""JAX's persistent compilation cache, so a new process does not recompile the model.

The model's jitted functions (`inference.py`) compile once per context
bucket (8, 16, 32, 64, 128, 256 trials for the shipped model) and query shape: a
second or more each on a CPU, so a fresh process spends most of its first
suggestions compiling. JAX can write the compiled executables to a
directory and load them in later processes instead of compiling again;
`enable` turns that on. `Optimizer(compilation_cache=True)`, the default,
calls it before it builds its model, so every process after the first that
reaches a bucket loads it from disk (numbers in docs/cold_start.md).

Default directory (`default_dir`): `$XDG_CACHE_HOME/optformer/jax` when
the XDG_CACHE_HOME environment variable holds an absolute path (the XDG
base directory specification), else `~/.cache/optformer/jax`. That is the
only environment variable read here, and only when the default directory
is asked for. JAX keys each entry by the computation, the jax/jaxlib
version and the device, so a stale entry is never used, only left behind;
deleting the directory is safe at any time. The shipped model's entries
take about 0.2 MB per history bucket (context encoding ~100-120 KB, scoring
~70 KB; 12 trials: 4 files, 368 KB).

The cache is process-wide: it also serves (and stores) the caller's own
JAX computations that take at least `MIN_COMPILE_TIME_SECS` to compile.
JAX's own switch wins: with `jax_enable_compilation_cache` off (e.g. the
JAX_ENABLE_COMPILATION_CACHE=false environment variable, read by JAX),
`enable` does nothing.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import warnings

# JAX is imported by `enable` and `disable`, not here: `import optformer` stays free of JAX (docs/cold_start.md).

# Compilations that take at least this long (seconds) are written to the
# cache. JAX's default, 1 s, kept only the propose functions of a 12-trial
# study on a CPU (score compiles in under a second); 0 caches every
# compilation (entries of 2 KB to ~0.2 MB).
MIN_COMPILE_TIME_SECS = 0.0

_enabled_dir: str | None = None  # The directory this module gave JAX, if any.
_disabled = False  # disable() was called: enable() without a path does nothing.
_unwritable: set[str] = set()  # Directories already warned about.


def default_dir() -> pathlib.Path:
  """The per-user cache directory: $XDG_CACHE_HOME/optformer/jax (absolute XDG_CACHE_HOME) or ~/.cache/optformer/jax."""
  base = os.environ.get("XDG_CACHE_HOME", "")
  root = pathlib.Path(base) if os.path.isabs(base) else pathlib.Path.home() / ".cache"
  return root / "optformer" / "jax"


def enable(path: str | os.PathLike | None = None) -> pathlib.Path | None:
  """Turns on JAX's persistent compilation cache for this process.

  Sets `jax_compilation_cache_dir` and lowers
  `jax_persistent_cache_min_compile_time_secs` to MIN_COMPILE_TIME_SECS.
  Cheap when the cache is already on in that directory, so it may be
  called before every model build (`Optimizer` calls `enable()` for
  compilation_cache=True and `enable(path)` for a path).

  Args:
    path: the cache directory, created if missing. None: keep a directory
      the caller already gave JAX (`jax_compilation_cache_dir`, set by
      jax.config.update or JAX_COMPILATION_CACHE_DIR) with the caller's
      other cache settings untouched (JAX's default threshold, 1 s, then
      skips the model's faster compilations), else `default_dir()`;
      nothing at all after `disable()`.

  Returns:
    The directory in use, or None when the cache stays off: JAX's
    `jax_enable_compilation_cache` is off, `disable()` was called and no
    path is given, or the directory cannot be created or written (then a
    RuntimeWarning is issued, once per directory, and JAX's settings are
    left as they were; nothing is raised).
  """
  global _enabled_dir, _disabled
  import jax
  from jax.experimental.compilation_cache import compilation_cache as _jax_cache

  if not jax.config.jax_enable_compilation_cache or (path is None and _disabled):
    return None
  current = jax.config.jax_compilation_cache_dir
  if path is None:
    if current and current != _enabled_dir:  # The caller's own directory.
      return pathlib.Path(current)
    path = default_dir()
  directory = str(pathlib.Path(path).expanduser().absolute())
  if directory == current:
    _disabled = False
    return pathlib.Path(directory)
  if directory in _unwritable:
    return None
  try:
    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryFile(dir=directory):
      pass
  except OSError as e:
    _unwritable.add(directory)
    warnings.warn(
        f"optformer: cannot use {directory} as the JAX compilation cache ({type(e).__name__}: {e}); "
        "continuing without it (each process compiles the model again). Pass compilation_cache= a writable "
        "directory, or False to silence this.", RuntimeWarning, stacklevel=2,
    )
    return None
  if current:
    _jax_cache.reset_cache()  # JAX opens its cache once; make it reopen in the new directory.
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_SECS)
  _enabled_dir, _disabled = directory, False
  return pathlib.Path(directory)


def disable() -> None:
  """Turns JAX's persistent compilation cache off for this process, whoever turned it on.

  It stays off for Optimizers built later with the default
  compilation_cache=True (also those built inside integrations or
  `Optimizer.load`); `enable(path)` or compilation_cache=path turns it on
  again. Functions already compiled stay compiled in memory.
  """
  global _enabled_dir, _disabled
  import jax
  from jax.experimental.compilation_cache import compilation_cache as _jax_cache

  if jax.config.jax_compilation_cache_dir:
    jax.config.update("jax_compilation_cache_dir", None)
    _jax_cache.reset_cache()
  _enabled_dir, _disabled = None, True
