"""`python -m optformer.training SUBCOMMAND ...`: the same as `optformer-train` (training/cli.py)."""

import sys

from optformer.training.cli import main

sys.exit(main())
