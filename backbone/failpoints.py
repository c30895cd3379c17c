"""Named crash points for the failure tests of the relay and the consumers.

`BACKBONE_FAILPOINTS=relay.after-delivery` makes a process die (exit code 86, no clean-up,
like `kill -9`) the moment it reaches that point, so a test can prove what happens when a
process dies in the one window that matters. `relay.after-delivery:freeze` stops the process
there instead, the first time it gets there (SIGSTOP, every thread: a hung process or a
frozen VM), until it gets SIGCONT.
Unset in production: the check is one lookup.
"""

import logging
import os
import signal

log = logging.getLogger(__name__)

EXIT_CODE = 86
_frozen: set[str] = set()  # points that froze this process already: each freezes it once


def failpoint(name: str) -> None:
    points = os.environ.get("BACKBONE_FAILPOINTS", "").split(",")
    if name in points:
        log.warning("failpoint %s reached: exiting without clean-up", name)
        logging.shutdown()
        os._exit(EXIT_CODE)
    if f"{name}:freeze" in points and name not in _frozen:
        _frozen.add(name)
        log.warning("failpoint %s reached: frozen until SIGCONT", name)
        os.kill(os.getpid(), signal.SIGSTOP)
