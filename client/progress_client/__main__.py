"""`python -m progress_client` runs the `progress` command line."""

import sys

from .cli import main

sys.exit(main())
