from django.apps import AppConfig

from backbone.topics import Topic


class PaymentsConfig(AppConfig):
    name = "payments"
    # The single writer of its topic (backbone/topics.py); its contracts are in events.py.
    publishes = (Topic("payments", key="order id"),)
