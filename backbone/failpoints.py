"""Named crash points for the failure tests of the relay and the consumers.

`BACKBONE_FAILPOINTS=relay.after-delivery` makes a process die (exit code 86, no clean-up,
like `kill -9`) the moment it reaches that point, so a test can prove what happens when a
process dies in the one window that matters. Unset in production: the check is one lookup.
"""

import logging
import os

log = logging.getLogger(__name__)

EXIT_CODE = 86


def failpoint(name: str) -> None:
    if name in os.environ.get("BACKBONE_FAILPOINTS", "").split(","):
        log.warning("failpoint %s reached: exiting without clean-up", name)
        logging.shutdown()
        os._exit(EXIT_CODE)
