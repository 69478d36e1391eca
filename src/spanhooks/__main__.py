"""``python -m spanhooks``: the same as the ``spanhooks`` command."""

import sys

from spanhooks.cli.main import main

sys.exit(main())
