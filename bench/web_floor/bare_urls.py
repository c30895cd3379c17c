"""The bare floor's one route (ROOT_URLCONF of bare_settings.py)."""

from django.urls import URLPattern, path

from bench.web_floor.views import trivial

urlpatterns: list[URLPattern] = [path("bench/trivial/", trivial)]
