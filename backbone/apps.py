from django.apps import AppConfig


class BackboneConfig(AppConfig):
    name = "backbone"
    verbose_name = "Event backbone"
