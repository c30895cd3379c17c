"""The web's waiting lane's URLconf (WEB_WAITING_URLCONF, backbone/web_lanes.py): only the views
that can wait; every other request goes by ROOT_URLCONF."""

from django.urls import include, path

import orders.urls_waiting
from backbone import api_errors

handler400 = api_errors.bad_request
handler404 = api_errors.not_found
handler500 = api_errors.server_error

urlpatterns = [path("api/", include(orders.urls_waiting))]
