from django.apps import AppConfig


class AaaConfig(AppConfig):
    name = "tarifa.aaa"
    label = "aaa"
    verbose_name = "Network access (RADIUS)"

    def ready(self):
        # Event handlers must be registered in every process that emits (web, CLI, worker).
        from . import handlers  # noqa: F401
