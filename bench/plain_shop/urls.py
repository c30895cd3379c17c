"""The shop's routes (config.urls, its error handlers too) plus the plain shop's order view."""

from django.urls import URLPattern, URLResolver, include, path

from bench.plain_shop.views import PlaceOrderView
from config.urls import handler400, handler404, handler500

__all__ = ["handler400", "handler404", "handler500", "urlpatterns"]

urlpatterns: list[URLPattern | URLResolver] = [
    path("bench/plain/orders/", PlaceOrderView.as_view(), name="plain-order"),
    path("", include("config.urls")),
]
