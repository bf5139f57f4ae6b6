from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "tarifa.subscriptions"
    label = "subscriptions"
    verbose_name = "Subscriptions"

    def ready(self):
        # Event handlers must be registered in every process that emits (web, CLI, worker),
        # so that emit() enqueues their job in the emitting transaction.
        from . import devices, handlers  # noqa: F401
