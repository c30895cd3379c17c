"""A recording gateway for the payments crash tests: it keeps a ledger in a file, so the test
and a `manage.py consume payments` subprocess (PAYMENT_GATEWAY points here) see the same card.

Like a real gateway it charges once per idempotency key and answers a repeated key with the
charge it already made. With PAYMENT_LEDGER_CRASH_AFTER_CHARGE=1 the process dies (as with
`kill -9`) right after a new charge, before the consumer's transaction can commit: the window
in which the card is charged but our database knows nothing of it.
"""

import json
import os
import uuid
from decimal import Decimal
from pathlib import Path

from backbone.failpoints import EXIT_CODE
from payments.gateway import Charge, PaymentGateway

LEDGER = "PAYMENT_LEDGER"
CRASH_AFTER_CHARGE = "PAYMENT_LEDGER_CRASH_AFTER_CHARGE"


def read_ledger(path: Path) -> list[dict[str, str]]:
    """Every call the gateway answered, in order: {"key", "amount", "reference", "charged"}."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


class LedgerGateway(PaymentGateway):
    def charge(self, *, idempotency_key: str, amount: Decimal, token: str) -> Charge:
        path = Path(os.environ[LEDGER])
        earlier = [call for call in read_ledger(path) if call["key"] == idempotency_key and call["charged"]]
        reference = earlier[0]["reference"] if earlier else f"ledger_{uuid.uuid4().hex[:16]}"
        self._append(path, key=idempotency_key, amount=str(amount), reference=reference, charged=not earlier)
        if not earlier and os.environ.get(CRASH_AFTER_CHARGE) == "1":
            os._exit(EXIT_CODE)  # charged; the consumer dies before its transaction commits
        return Charge(approved=True, reference=reference)

    @staticmethod
    def _append(path: Path, **call: object) -> None:
        with path.open("a") as ledger:
            ledger.write(json.dumps(call) + "\n")
            ledger.flush()
            os.fsync(ledger.fileno())
