"""The dead letters' errors, and how a handler's failure is written down."""

import traceback


class DeadLetterError(Exception):
    """A replay or discard that cannot be done; the message says why in one line."""


class ReplayFailed(DeadLetterError):
    """The dead letter failed again on replay: it stays pending with the new error."""


class DeadLetterPublishError(RuntimeError):
    """Kafka did not confirm a record sent to a `.dlq` topic."""


def describe_failure(error: BaseException) -> str:
    """`Type: message`, then the traceback: the first line is the summary everywhere."""
    summary = f"{type(error).__name__}: {error}".strip()
    trace = "".join(traceback.format_exception(error)).rstrip()
    return f"{summary}\n\n{trace}"


def summary(error: str) -> str:
    return error.split("\n", 1)[0]
