"""HTTP routes of the shipments context (mounted under /api/)."""

from django.urls import URLPattern, URLResolver, path

from .api import ShipmentDispatchView

urlpatterns: list[URLPattern | URLResolver] = [
    path("shipments/<uuid:id>/dispatch/", ShipmentDispatchView.as_view(), name="shipments-dispatch"),
]
