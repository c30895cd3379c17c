from django.apps import AppConfig

from backbone.topics import Topic


class ShipmentsConfig(AppConfig):
    name = "shipments"
    # The single writer of its topic (backbone/topics.py); its contracts are in events.py.
    publishes = (Topic("shipments", key="order id"),)
