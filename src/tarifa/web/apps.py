from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class WebConfig(AppConfig):
    name = "tarifa.web"
    label = "web"
    verbose_name = "Operator UI and API"

    def ready(self):
        # Each app declares its screens in screens.py and its API in api.py.
        autodiscover_modules("screens")
        autodiscover_modules("api")
