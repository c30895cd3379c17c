from django.apps import AppConfig

from backbone.topics import Topic


class OrdersConfig(AppConfig):
    name = "orders"
    # The single writer of its topic (backbone/topics.py); its contracts are in events.py.
    publishes = (Topic("orders", key="order id"),)
