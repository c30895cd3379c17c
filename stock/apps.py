from django.apps import AppConfig

from backbone.topics import Topic


class StockConfig(AppConfig):
    name = "stock"
    # The single writer of its topics (backbone/topics.py); its contracts are in events.py.
    publishes = (
        Topic("stock.reservations", key="order id"),
        # Latest level per sku is what readers need, so the log may be compacted.
        Topic("stock.levels", key="sku", compacted=True),
    )
