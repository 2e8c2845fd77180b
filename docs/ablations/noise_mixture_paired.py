# Paired (task, seed) difference of normalized regret at trial 25 (mix30 minus base) from the benchmark cache.
import pathlib, sys
import numpy as np
from optformer.eval import report
data = report.load(pathlib.Path(sys.argv[1]))
for suite, tasks in data.items():
  d = []
  for task, entry in tasks.items():
    c = report.task_curves(entry)["curves"]
    if "base" in c and "mix30" in c:
      d += list(c["mix30"][:, 24] - c["base"][:, 24])
  d = np.array(d)
  print(f"{suite}: mix30 - base regret@25 = {d.mean():+.3f} ± {d.std(ddof=1) / np.sqrt(len(d)):.3f} ({len(d)} pairs)")
