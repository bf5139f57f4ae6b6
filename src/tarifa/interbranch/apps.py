from django.apps import AppConfig


class InterbranchConfig(AppConfig):
    name = "tarifa.interbranch"
    label = "interbranch"
    verbose_name = "Serving other branches' subscribers"

    def ready(self):
        from . import handlers, queries  # noqa: F401  (registers message types, result hooks and queries with federation)
