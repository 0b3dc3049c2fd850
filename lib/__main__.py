"""``python -m layercollapse``."""

import sys

from layercollapse.cli.main import main

sys.exit(main())
