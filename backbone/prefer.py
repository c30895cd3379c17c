"""The `Prefer` request header (RFC 7240): the one preference the API honours, `wait=N`.

A preference is a hint: one the server does not know, or cannot parse, is ignored, and the
request is served as if it had none (RFC 7240, section 2). A response that honoured `wait` says
so with `Preference-Applied: wait`.
"""

import math
import re

PREFERENCE_APPLIED = "Preference-Applied"
# `wait=10`, `wait="10"`, among other preferences: `respond-async, wait=10; x=y`.
_WAIT = re.compile(r'(?:^|,)\s*wait\s*=\s*"?(\d+(?:\.\d+)?)"?\s*(?:;|,|$)', re.IGNORECASE)


def wait_seconds(prefer: str | None) -> float | None:
    """The seconds of `wait=N` in a Prefer header's value; None when it asks for no wait."""
    if not prefer:
        return None
    match = _WAIT.search(prefer)
    if match is None:
        return None
    seconds = float(match[1])
    return seconds if math.isfinite(seconds) else None
