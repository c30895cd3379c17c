"""HTTP routes of the stock context (mounted under /api/)."""

from django.urls import URLPattern, URLResolver, path

from .api import StockReceiptsView

urlpatterns: list[URLPattern | URLResolver] = [
    path("stock/<str:sku>/receipts/", StockReceiptsView.as_view(), name="stock-receipts"),
]
