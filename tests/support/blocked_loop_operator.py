"""``clientcert-operator`` with a fault no API can cause: ``LCC_BLOCK_LOOP_AFTER`` seconds after
the watchdog's heartbeat starts, a callback blocks the event loop for an hour, as a blocking call
in a handler or a livelock inside a library would. Everything else is the packaged operator."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time

from certoperator import health, main


def block_the_loop_later(after: float) -> None:
    heartbeat = health.Watchdog.heartbeat

    async def heartbeat_then_block(self: health.Watchdog) -> None:
        loop = asyncio.get_running_loop()
        timer = threading.Timer(after, loop.call_soon_threadsafe, (time.sleep, 3600))
        timer.daemon = True
        timer.start()
        await heartbeat(self)

    health.Watchdog.heartbeat = heartbeat_then_block  # type: ignore[method-assign]


if __name__ == "__main__":
    block_the_loop_later(float(os.environ["LCC_BLOCK_LOOP_AFTER"]))
    sys.exit(main.main())
