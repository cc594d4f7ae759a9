"""`python -m uocd` runs uocd."""

import sys

from .main import main

sys.exit(main())
