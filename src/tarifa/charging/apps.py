from django.apps import AppConfig


class ChargingConfig(AppConfig):
    name = "tarifa.charging"
    label = "charging"
    verbose_name = "Online charging"
