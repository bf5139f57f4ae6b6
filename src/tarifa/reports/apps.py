from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "tarifa.reports"
    label = "reports"
    verbose_name = "Reports"

    def ready(self):
        # Every report is a declaration in definitions/; importing them registers them, and
        # the dashboard's tiles (web.dashboard.widget) come with them.
        from . import definitions, tiles  # noqa: F401
