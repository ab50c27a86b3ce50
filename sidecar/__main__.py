"""``python -m sidecar`` is ``cert-sidecar``."""

import sys

from sidecar.main import main

sys.exit(main())
