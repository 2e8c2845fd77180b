"""Scores the noise-mixture ablation's two exports on one evaluation prior (`optformer-train ablate`'s scoring and
table, without its training step: the runs were stopped at the same step, before their 1500-step schedule ended).

  python docs/ablations/noise_mixture_score.py RUNS PRIOR OUT.md   # e.g. runs/noise reference-noiseless ...
"""

import json
import pathlib
import platform
import sys
import time

from optformer.training import ablate

runs, prior, out = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
variants = [ablate.parse_variant("base="), ablate.parse_variant("mix30=--prior-noiseless 0.3")]
result = ablate.score([(v.name, runs / v.name / "export") for v in variants], prior, (5, 10, 20, 40), 4)
ablate.describe(result, variants, runs)
result.update(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), machine=f"{platform.machine()}, "
              f"{ablate._cpus()} CPUs, device {ablate._device()}")
command = f"python docs/ablations/noise_mixture_score.py {runs} {prior} {out}"
out.write_text(ablate.markdown(result, f"noise mixture, {prior} prior", command))
out.with_suffix(".json").write_text(json.dumps({"command": command, **result}, indent=1))
print(out.read_text())
