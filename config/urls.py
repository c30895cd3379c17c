from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from backbone.asyncapi import asyncapi_view
from backbone.health import health
from backbone.metrics import metrics_view
from backbone.throttling import throttle_logins

# Under /api/, Django's own error pages are JSON too: a path that matches no route (a
# malformed UUID, say) is a JSON 404. See backbone/api_errors.py.
handler400 = "backbone.api_errors.bad_request"
handler404 = "backbone.api_errors.not_found"
handler500 = "backbone.api_errors.server_error"

urlpatterns = [
    # Before the admin's own routes, so its login form is rate-limited like the API's.
    path("admin/login/", throttle_logins(admin.site.login)),
    # The story picture, in the admin's look and behind its login (a string: backbone imports no outbox).
    path("admin/story/", include("outbox.urls")),
    # The operations console's pages (outbox/overview.py), staff only, before the admin's routes.
    path("admin/", include("outbox.overview")),
    path("admin/", admin.site.urls),
    path("health/", health, name="health"),
    path("metrics", metrics_view, name="metrics"),  # Prometheus scrapes /metrics (docs/metrics.md)
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The events' AsyncAPI document, public like the OpenAPI schema (backbone/asyncapi.py).
    path("api/asyncapi/", asyncapi_view, name="asyncapi"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    # Each context mounts its own routes; none knows the others'.
    path("api/", include("orders.urls")),
    path("api/", include("stock.urls")),
    path("api/", include("payments.urls")),
    path("api/", include("shipments.urls")),
]
