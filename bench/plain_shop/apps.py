from django.apps import AppConfig


class PlainShopConfig(AppConfig):
    name = "bench.plain_shop"
    label = "plain_shop"
    default_auto_field = "django.db.models.BigAutoField"
