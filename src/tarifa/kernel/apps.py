from django.apps import AppConfig


class KernelConfig(AppConfig):
    name = "tarifa.kernel"
    label = "kernel"
    verbose_name = "Kernel"
