"""eval.pibo: the good and misleading beliefs it builds."""

import numpy as np

from optformer.eval import pibo
from optformer import priors


def test_mirror_is_far_from_the_point_and_beliefs_fit_the_space(mixed_space):
  point = {"learning_rate": 1e-4, "units": 3, "batch_size": 16, "optimizer": "sgd"}
  far = pibo.mirror(mixed_space, point)
  assert mixed_space.validate(far) == far
  assert far["batch_size"] == 128 and far["optimizer"] == 3
  assert abs(mixed_space["learning_rate"].to_unit(far["learning_rate"]) - (1 - mixed_space["learning_rate"].to_unit(1e-4))) < 1e-9
  prior = priors.Prior(mixed_space, pibo.beliefs(mixed_space, point))
  logp = prior.log_density([point, far])
  assert logp[0] > logp[1] + 5
  assert np.isfinite(logp).all()
