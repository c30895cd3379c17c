"""The payment gateway port and its simulated adapter.

The services talk to a `PaymentGateway`; which adapter runs is decided in one place, the
`PAYMENT_GATEWAY` setting (a dotted path, default the simulated gateway). A real adapter
implements the same small interface around the provider's SDK.
"""

import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True, slots=True)
class Charge:
    """What the gateway answered: approved or declined, and its reference for the charge."""

    approved: bool
    reference: str
    decline_reason: str = ""


class GatewayUnavailable(Exception):
    """The gateway could not be asked or did not answer: the outcome is unknown, ask again later."""


class PaymentGateway(ABC):
    @abstractmethod
    def charge(self, *, idempotency_key: str, amount: Decimal, token: str) -> Charge:
        """Charge `amount` to the card behind `token`.

        Calls with the same `idempotency_key` must return the first call's outcome and never
        charge twice (what real gateways offer as an idempotency key). Raises
        GatewayUnavailable when the outcome is unknown.
        """


class SimulatedGateway(PaymentGateway):
    """Approves every card except the token `tok_declined`; needs no network."""

    DECLINED_TOKEN = "tok_declined"
    _REFERENCES = uuid.UUID("5d0c8a4e-8f4f-4d53-9a55-3f6b2f1c0e11")

    def charge(self, *, idempotency_key: str, amount: Decimal, token: str) -> Charge:
        # Derived from the key, so asking twice yields the same charge, as with a real gateway.
        reference = f"sim_{uuid.uuid5(self._REFERENCES, idempotency_key).hex[:24]}"
        if token == self.DECLINED_TOKEN:
            return Charge(approved=False, reference=reference, decline_reason="card_declined")
        if amount <= 0:
            return Charge(approved=False, reference=reference, decline_reason="invalid_amount")
        return Charge(approved=True, reference=reference)


def get_gateway() -> PaymentGateway:
    """The configured adapter (settings.PAYMENT_GATEWAY), built once per dotted path."""
    return _build(settings.PAYMENT_GATEWAY)


@cache
def _build(dotted_path: str) -> PaymentGateway:
    gateway_class = import_string(dotted_path)
    return gateway_class()
