"""``python -m spanhooks``: the same as the ``spanhooks`` command."""

import sys

from spanhooks._cli import main

sys.exit(main())
