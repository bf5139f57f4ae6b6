from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "tarifa.ledger"
    label = "ledger"
