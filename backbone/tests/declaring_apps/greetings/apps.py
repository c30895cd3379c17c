from django.apps import AppConfig

from backbone.topics import Topic


class GreetingsConfig(AppConfig):
    name = "backbone.tests.declaring_apps.greetings"
    label = "greetings"
    publishes = (Topic("greetings", key="greeting id"),)
