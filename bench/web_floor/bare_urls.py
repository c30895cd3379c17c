from django.urls import URLPattern, path

from bench.web_floor.views import trivial

urlpatterns: list[URLPattern] = [path("bench/trivial/", trivial)]
