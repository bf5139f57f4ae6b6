from django.apps import AppConfig


class AaaConfig(AppConfig):
    name = "tarifa.aaa"
    label = "aaa"
    verbose_name = "Network access (RADIUS)"
