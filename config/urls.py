"""The shop's URLs. Each part is imported, not named by a string, so that the import rules
(pyproject.toml's layers contract) see the project on top of what it mounts."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

import orders.urls
import outbox.overview
import outbox.urls
import payments.urls
import shipments.urls
import stock.urls
from backbone import api_errors
from backbone.asyncapi import asyncapi_view
from backbone.health import health
from backbone.throttling import throttle_logins
from outbox.metrics import metrics_view

# Under /api/, Django's own error pages are JSON too: a path that matches no route (a
# malformed UUID, say) is a JSON 404. See backbone/api_errors.py.
handler400 = api_errors.bad_request
handler404 = api_errors.not_found
handler500 = api_errors.server_error

urlpatterns = [
    # Before the admin's own routes, so its login form is rate-limited like the API's.
    path("admin/login/", throttle_logins(admin.site.login)),
    # The story picture, in the admin's look and behind its login.
    path("admin/story/", include(outbox.urls)),
    # The operations console's pages (outbox/overview.py), staff only, before the admin's routes.
    path("admin/", include(outbox.overview)),
    path("admin/", admin.site.urls),
    path("health/", health, name="health"),
    # Prometheus scrapes /metrics (docs/metrics.md): the whole backbone's, so the outbox's view.
    path("metrics", metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The events' AsyncAPI document, public like the OpenAPI schema (backbone/asyncapi.py).
    path("api/asyncapi/", asyncapi_view, name="asyncapi"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    # Each context mounts its own routes; none knows the others'.
    path("api/", include(orders.urls)),
    path("api/", include(stock.urls)),
    path("api/", include(payments.urls)),
    path("api/", include(shipments.urls)),
]
