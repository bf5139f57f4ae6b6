from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "tarifa.integrations"
    label = "integrations"
    verbose_name = "Integrations"

    def ready(self):
        from . import handlers  # noqa: F401  (event subscriptions, registered in every process)
