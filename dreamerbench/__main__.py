"""``python -m dreamerbench``: the ``dreamerbench`` command."""

import sys

from dreamerbench.experiments.cli import main

sys.exit(main())
