from django.apps import AppConfig


class ScriptsConfig(AppConfig):
    name = "tarifa.scripts"
    label = "scripts"
    verbose_name = "Scripts"

    def ready(self):
        from . import functions  # noqa: F401  (the built-in functions scripts may call)
