from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "tarifa.inventory"
    label = "inventory"
    verbose_name = "Warehouse"
