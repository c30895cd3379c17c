"""HTTP routes of the orders context (mounted under /api/)."""

from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = []
