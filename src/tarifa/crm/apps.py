from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "tarifa.crm"
    label = "crm"
