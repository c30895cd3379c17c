from django.apps import AppConfig

from backbone.topics import Topic


class ImpostorConfig(AppConfig):
    name = "backbone.tests.declaring_apps.impostor"
    label = "impostor"
    publishes = (Topic("orders", key="order id"),)
