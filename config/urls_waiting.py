"""The web's waiting lane's URLconf (WEB_WAITING_URLCONF, backbone/web_lanes.py): only the views
that can wait; every other request goes by ROOT_URLCONF."""

from django.urls import include, path

handler400 = "backbone.api_errors.bad_request"
handler404 = "backbone.api_errors.not_found"
handler500 = "backbone.api_errors.server_error"

urlpatterns = [path("api/", include("orders.urls_waiting"))]
