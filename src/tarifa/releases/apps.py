from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "tarifa.releases"
    label = "releases"
    verbose_name = "Reference releases"

    def ready(self):
        from tarifa.kernel import ownership

        from . import declaration, status

        ownership.register(*declaration.LABELS)  # a branch refuses local edits of these (kernel/ownership.py)
        status.register()
