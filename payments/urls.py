"""HTTP routes of the payments context (mounted under /api/)."""

from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = []
