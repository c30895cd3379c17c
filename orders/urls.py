"""HTTP routes of the orders context (mounted under /api/)."""

from django.urls import URLPattern, URLResolver, path
from rest_framework.authtoken.views import ObtainAuthToken

from backbone.throttling import LOGIN_THROTTLES

from . import api

app_name = "orders"

urlpatterns: list[URLPattern | URLResolver] = [
    path("auth/token/", ObtainAuthToken.as_view(throttle_classes=LOGIN_THROTTLES), name="auth-token"),
    path("products/", api.ProductListView.as_view(), name="product-list"),
    path("orders/", api.OrderListCreateView.as_view(), name="order-list"),
    path("orders/<uuid:order_id>/", api.OrderDetailView.as_view(), name="order-detail"),
    path("orders/<uuid:order_id>/events/", api.OrderEventsView.as_view(), name="order-events"),
]
