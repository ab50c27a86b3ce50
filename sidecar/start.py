"""``cert-sidecar``'s entry point, kept apart so the collector is off before anything is imported.

Starting means importing boto3, botocore and cryptography and building a botocore client: objects
that almost all stay alive, so the collector's passes over them find nothing and cost about a
fifth of the start (80-110 of ~480 ms CPU in the image). The start is what a Pod waits for before
its app may run. The renewal loop turns the collector on after its first attempt
(``RenewalLoop.run``), ``once`` before a retry; ``check`` and ``wait`` are short-lived and leave
it off.
"""

from __future__ import annotations

import gc


def main() -> int:
    gc.disable()
    from sidecar.main import main as sidecar_main

    return sidecar_main()
