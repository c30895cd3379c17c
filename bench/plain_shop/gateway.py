"""A simulated card gateway, as the payments context's SimulatedGateway behaves (approves every
token but `tok_declined`, a reference derived from the idempotency key), called inline."""

import uuid
from dataclasses import dataclass
from decimal import Decimal

DECLINED_TOKEN = "tok_declined"
_REFERENCES = uuid.UUID("5d0c8a4e-8f4f-4d53-9a55-3f6b2f1c0e11")


@dataclass(frozen=True, slots=True)
class Charge:
    approved: bool
    reference: str


def charge(*, idempotency_key: str, amount: Decimal, token: str) -> Charge:
    reference = f"sim_{uuid.uuid5(_REFERENCES, idempotency_key).hex[:24]}"
    return Charge(approved=token != DECLINED_TOKEN and amount > 0, reference=reference)
