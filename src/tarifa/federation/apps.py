from django.apps import AppConfig


class FederationConfig(AppConfig):
    name = "tarifa.federation"
    label = "federation"
    verbose_name = "Federation"

    def ready(self):
        from . import handlers  # noqa: F401  (registers the built-in `ping` type)
