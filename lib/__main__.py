"""``python -m layercollapse``."""

import sys

from .cli import main

sys.exit(main())
