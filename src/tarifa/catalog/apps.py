from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "tarifa.catalog"
    label = "catalog"
    verbose_name = "Catalog"
