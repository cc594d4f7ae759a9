"""`python -m node` runs uocd."""

import sys

from .cli import main

sys.exit(main())
