from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "tarifa.audit"
    label = "audit"
    verbose_name = "Audit trail"
