"""The admin's "Backbone overview": the facts of `manage.py status`, per context, for staff."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from .catalog import event_catalog
from .status import age_text, collect

REFRESH_SECONDS = 10


def overview(request: HttpRequest) -> HttpResponse:
    facts = collect()
    context = {
        **admin.site.each_context(request),
        "title": "Backbone overview",
        "overview": facts,
        "oldest_age": age_text(facts.relay.oldest_age),
        "refresh_seconds": REFRESH_SECONDS,
    }
    return TemplateResponse(request, "outbox/overview.html", context)


# Mounted under admin/ before the admin's own routes; admin_view asks staff to log in.
urlpatterns = [
    path("backbone-overview/", admin.site.admin_view(overview), name="backbone-overview"),
    path("event-catalog/", admin.site.admin_view(event_catalog), name="event-catalog"),
]
