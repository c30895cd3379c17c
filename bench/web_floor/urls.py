"""The shop's routes (config.urls, its error handlers too) plus the floor's trivial view."""

from django.urls import URLPattern, URLResolver, include, path

from bench.web_floor.views import trivial
from config.urls import handler400, handler404, handler500

__all__ = ["handler400", "handler404", "handler500", "urlpatterns"]

urlpatterns: list[URLPattern | URLResolver] = [
    path("bench/trivial/", trivial, name="bench-trivial"),
    path("", include("config.urls")),
]
