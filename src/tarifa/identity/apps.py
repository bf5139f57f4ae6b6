from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "tarifa.identity"
    label = "identity"
    verbose_name = "Staff and roles"
