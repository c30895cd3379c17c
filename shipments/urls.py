"""HTTP routes of the shipments context (mounted under /api/)."""

from django.urls import URLPattern, URLResolver, path

from .api import DispatchApi

urlpatterns: list[URLPattern | URLResolver] = [
    path("shipments/<uuid:id>/dispatch/", DispatchApi.as_view(), name="shipments-dispatch"),
]
