"""The orders views of the web's waiting lane (backbone/web_lanes.py): async, so that a wait holds
no thread. Same paths and names as orders/urls.py, so `reverse()` answers alike in both lanes."""

from django.urls import URLPattern, path

from . import api

app_name = "orders"

urlpatterns: list[URLPattern] = [
    path("orders/", api.PlaceOrderAndWaitView.as_view(), name="order-list"),
    path("orders/<uuid:order_id>/", api.WaitingOrderDetailView.as_view(), name="order-detail"),
]
