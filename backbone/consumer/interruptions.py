"""Why a batch transaction stopped: raised inside it, so it rolls back, and caught by the runner."""

from ..subscriptions import Subscription


class Interrupted(Exception):
    """Record `index` of the attempted slice stopped the transaction (rolled back)."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


class HandlerFailed(Interrupted):
    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(index)
        self.error = error


class LimitReached(Interrupted):
    """Dead-lettering record `index` would exceed the dead-letter budget."""


class BatchHandlerFailed(Exception):
    """A batch handler raised (the transaction rolled back); which record it choked on is unknown."""

    def __init__(self, subscription: Subscription, items: int, error: Exception) -> None:
        super().__init__(subscription.name)
        self.subscription = subscription
        self.items = items
        self.error = error


class Stopped(Exception):
    """A shutdown was asked for while a record waited for its next attempt."""
