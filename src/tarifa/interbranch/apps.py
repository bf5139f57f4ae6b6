from django.apps import AppConfig


class InterbranchConfig(AppConfig):
    name = "tarifa.interbranch"
    label = "interbranch"
    verbose_name = "Serving other branches' subscribers"

    def ready(self):
        from . import handlers  # noqa: F401  (registers the message types and result hooks with federation)
