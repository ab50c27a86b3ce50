"""``python -m sidecar`` is ``cert-sidecar``."""

import sys

from sidecar.start import main

sys.exit(main())
