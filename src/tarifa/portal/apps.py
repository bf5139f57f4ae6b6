from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "tarifa.portal"
    label = "portal"
    verbose_name = "Self-care portal"

    def ready(self):
        from . import screens  # noqa: F401  (staff screens, the customer panel)
        from . import api  # noqa: F401  (staff API: portal users)
