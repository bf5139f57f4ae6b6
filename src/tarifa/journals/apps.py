from django.apps import AppConfig


class JournalsConfig(AppConfig):
    name = "tarifa.journals"
    label = "journals"
    verbose_name = "Payment journals"

    def ready(self):
        from . import handlers  # noqa: F401  (domain-event subscribers, federation message types, commands)
