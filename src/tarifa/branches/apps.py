from django.apps import AppConfig


class BranchesConfig(AppConfig):
    name = "tarifa.branches"
    label = "branches"
    verbose_name = "Branches"
