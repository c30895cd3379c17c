"""HTTP routes of the orders context (mounted under /api/)."""

from django.urls import URLPattern, URLResolver, path
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.settings import api_settings

from backbone.serializers import StrictMixin
from backbone.throttling import LOGIN_THROTTLES

from . import api

app_name = "orders"
PARSERS = api_settings.DEFAULT_PARSER_CLASSES


# DRF's username and password, refusing any other key like the API's other bodies. (A comment:
# a docstring would become the schema's description of the body.)
class LoginSerializer(StrictMixin, AuthTokenSerializer):
    pass


urlpatterns: list[URLPattern | URLResolver] = [
    # DRF's token view lists its own parsers and throttles: the API's parsers (JSON only; deep
    # JSON is a 400 there too) and the login rate limits.
    path(
        "auth/token/",
        ObtainAuthToken.as_view(
            parser_classes=PARSERS, throttle_classes=LOGIN_THROTTLES, serializer_class=LoginSerializer
        ),
        name="auth-token",
    ),
    path("products/", api.ProductListView.as_view(), name="product-list"),
    path("orders/", api.OrderListCreateView.as_view(), name="order-list"),
    path("orders/<uuid:order_id>/", api.OrderDetailView.as_view(), name="order-detail"),
    path("orders/<uuid:order_id>/events/", api.OrderEventsView.as_view(), name="order-events"),
]
