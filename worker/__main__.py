"""`python -m worker` is `toksta-worker`."""

import sys

from worker.cli import main

sys.exit(main())
