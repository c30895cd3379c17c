"""Orders placed per customer: `THROTTLE_RATES["orders"]`, counted in the shared cache."""

from typing import Any

from backbone.throttling import SettingsRateThrottle


class OrderPlacementThrottle(SettingsRateThrottle):
    """Orders placed per customer."""

    scope = "orders"

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}
