"""The web benchmark's rows: CPU per request against the bare WSGI floor, with the targets, and
the shop's CPU per order against the plain Django baseline's."""

from dataclasses import dataclass

from bench.harness import Result, latency_summary
from bench.web_load import Spent

NAME = "web"
# The targets: server-side CPU of the web processes per request.
TARGET_MS = {"POST /api/orders/": 4.0, "GET /api/orders/{id}/": 2.0}
TARGET_STACK_RATIO = 1.5  # the stack floor against the bare WSGI view
E2E_NAME = "end to end"


@dataclass(frozen=True)
class Floors:
    bare: Spent  # a bare Django JSON view, gunicorn sync workers, WSGI, no middleware
    stack: Spent  # the same view behind the shop's web command and middleware


def floor_rows(floors: Floors) -> list[Result]:
    bare, stack = floors.bare.web_ms(), floors.stack.web_ms()
    ratio = stack / bare if bare > 0 else None
    errors = floors.bare.describe_errors() or floors.stack.describe_errors()
    return [
        Result(
            NAME,
            "CPU ms/request: bare floor (Django, sync WSGI, no middleware)",
            bare,
            "ms",
            note=floors.bare.describe_errors(),
            details=_details(floors.bare),
        ),
        Result(
            NAME,
            "CPU ms/request: stack floor (web command, trivial view)",
            stack,
            "ms",
            baseline=bare,
            ratio=ratio,
            target=f"<= {TARGET_STACK_RATIO:.1f}x bare",
            met=ratio is not None and ratio <= TARGET_STACK_RATIO and not errors,
            note=floors.stack.describe_errors(),
            details=_details(floors.stack),
        ),
    ]


def request_rows(measured: dict[str, Spent], floors: Floors) -> list[Result]:
    """One row per endpoint: its web CPU per request, the bare floor as baseline, the target."""
    bare = floors.bare.web_ms()
    rows = []
    for endpoint, spent in measured.items():
        value = spent.web_ms()
        target = TARGET_MS.get(endpoint)
        rows.append(
            Result(
                NAME,
                f"CPU ms/request: {endpoint}",
                value,
                "ms",
                baseline=bare,
                ratio=value / bare if bare > 0 else None,
                target=f"<= {target:.0f} ms" if target is not None else "",
                met=(value <= target and not spent.errors) if target is not None else None,
                note=spent.describe_errors(),
                details=_details(spent),
            )
        )
    return rows


def baseline_rows(rate: float, fixed: Spent, clients: int, saturated: Spent) -> list[Result]:
    """The plain Django shop: CPU per order (web and PostgreSQL) at a fixed rate, and its
    orders/s with `clients` clients back to back."""
    per_order = fixed.web_ms() + fixed.postgres_ms()
    return [
        Result(
            NAME,
            f"plain Django CPU ms per order @{rate:.0f}/s: web + postgres",
            per_order,
            "ms",
            note=fixed.describe_errors()
            or f"web {fixed.web_ms():.1f} ms + PostgreSQL {fixed.postgres_ms():.1f} ms",
            details=_details(fixed),
        ),
        Result(
            NAME,
            f"plain Django saturation orders/s ({clients} clients)",
            saturated.succeeded / saturated.seconds if saturated.seconds > 0 else None,
            "/s",
            note=saturated.describe_errors(),
            details=_details(saturated),
        ),
    ]


TARGET_PRICE_OF_ARCHITECTURE = 3.0  # the shop's CPU per order at most 3x the plain view's


def comparison_rows(earlier: list[Result], rate: float, baseline: Spent) -> list[Result]:
    """The shop's CPU per confirmed order (the e2e part's total at the same rate, when it ran
    in this invocation) against the plain Django view's: what the architecture costs."""
    metric = f"CPU ms per confirmed order @{rate:.0f}/s: total"
    shop = next((row for row in earlier if row.benchmark == E2E_NAME and row.metric == metric), None)
    if shop is None or shop.value is None:
        return []
    plain = baseline.web_ms() + baseline.postgres_ms()
    ratio = shop.value / plain if plain > 0 else None
    return [
        Result(
            NAME,
            f"shop / plain Django CPU per order @{rate:.0f}/s",
            shop.value,
            "ms",
            baseline=plain,
            ratio=ratio,
            target=f"<= {TARGET_PRICE_OF_ARCHITECTURE:.0f}x",
            met=ratio is not None and ratio <= TARGET_PRICE_OF_ARCHITECTURE,
            note="shop: e2e's total (every process and PostgreSQL); plain: web and PostgreSQL",
        )
    ]


def _details(spent: Spent) -> dict[str, float | int | str]:
    latency = latency_summary(spent.latencies)
    return {
        "requests": spent.requests,
        "failed": len(spent.errors),
        "seconds": round(spent.seconds, 2),
        "requests_per_second": round(spent.succeeded / spent.seconds, 1) if spent.seconds else 0,
        "web_cpu_ms_per_request": round(spent.web_ms(), 3),
        "postgres_cpu_ms_per_request": round(spent.postgres_ms(), 3),
        "p50_ms": round(latency["p50_ms"], 2),
        "p99_ms": round(latency["p99_ms"], 2),
        "server_idle_cpu_ms_per_second": round(spent.idle_cpu_ms_per_second, 2),
    }
