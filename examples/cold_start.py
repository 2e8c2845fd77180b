"""Cold start: seconds from `import optformer` to the first suggestions, in a fresh process.

  python examples/cold_start.py                     # Optimizer's default: the per-user compilation cache
  python examples/cold_start.py --cache-dir DIR     # the compilation cache in DIR (empty DIR: cold cache)
  python examples/cold_start.py --no-cache          # compilation_cache=False: compile everything

Runs one study with the shipped default checkpoint (model v2) on an
8-parameter Float search space (v2 takes up to 64; v1 took 8) and a shifted
sphere objective: 12 ask / tell rounds, which touch the context buckets 8 and
16 (`inference.history_buckets`, up to the model's 256 trials).
Prints one JSON object, in seconds of wall time:
  import       `import optformer`;
  optimizer    `Optimizer(...)`: checkpoint load and engine build;
  first_ask    the first `ask()` (empty history: a uniform sample with the default search, no model call);
  first_12     all 12 rounds (asks and tells), first_ask included;
  total        from `import optformer` to the 12th suggestion;
  again_12     the same 12 rounds in a second study in the same process,
               with everything compiled in memory: the floor a cache can reach.
Run each setting in its own process: JAX keeps compiled functions in
memory, so only the first study of a process measures a cold start. See
docs/cold_start.md for measured numbers.
"""

import time

_T0 = time.perf_counter()
import optformer  # noqa: E402  (timed)

_T_IMPORT = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402

NUM_PARAMS = 8


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  group = parser.add_mutually_exclusive_group()
  group.add_argument("--cache-dir", default=None, help="compilation cache directory (default: the per-user one)")
  group.add_argument("--no-cache", action="store_true", help="build the Optimizer with compilation_cache=False")
  parser.add_argument("--trials", type=int, default=12, help="ask/tell rounds (default: 12)")
  args = parser.parse_args()
  kwargs = {}
  if args.no_cache:
    kwargs["compilation_cache"] = False
  elif args.cache_dir is not None:
    kwargs["compilation_cache"] = args.cache_dir

  space = optformer.SearchSpace([optformer.Float(f"x{i}", -5.0, 5.0) for i in range(NUM_PARAMS)])
  t = time.perf_counter()
  opt = optformer.Optimizer(space, goal="minimize", seed=0, **kwargs)
  t_opt = time.perf_counter() - t
  t = time.perf_counter()
  first_ask = _study(opt, args.trials)
  t_end = time.perf_counter()
  again = time.perf_counter()
  _study(optformer.Optimizer(space, goal="minimize", seed=0, **kwargs), args.trials)
  again = time.perf_counter() - again
  print(json.dumps({
      "import": round(_T_IMPORT - _T0, 2), "optimizer": round(t_opt, 2), "first_ask": round(first_ask, 2),
      f"first_{args.trials}": round(t_end - t, 2), "total": round(t_end - _T0, 2),
      f"again_{args.trials}": round(again, 2), "best": round(opt.best[1], 3),
  }))


def _study(opt, trials: int) -> float:
  """Runs `trials` ask/tell rounds on a shifted sphere; returns the seconds of the first ask."""
  t = time.perf_counter()
  first_ask = None
  for _ in range(trials):
    params = opt.ask()
    if first_ask is None:
      first_ask = time.perf_counter() - t
    opt.tell(params, sum((params[f"x{i}"] - 1.0) ** 2 for i in range(NUM_PARAMS)))
  return first_ask


if __name__ == "__main__":
  main()
