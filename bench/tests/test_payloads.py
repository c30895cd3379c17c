"""The bench's synthetic outbox rows become records with the relay's own headers."""

from bench.payloads import order_rows


def test_a_synthetic_row_has_the_headers_the_relay_builds() -> None:
    [row] = order_rows(1)
    headers = dict(row.headers())
    assert headers["ce_type"] == b"orders.OrderRequested"
    assert row.traceparent is not None
    assert headers["ce_traceparent"] == row.traceparent.encode()
    assert "ce_tracestate" not in headers
