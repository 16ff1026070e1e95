"""`python -m catalog ...`: the catalog CLI without the rest of e2gan."""

import sys

from catalog.cli import main

sys.exit(main())
