"""``python -m tfcpu`` runs the command line."""

import sys

from tfcpu.cli import main

sys.exit(main())
