from django.apps import AppConfig


class ChargingConfig(AppConfig):
    name = "tarifa.charging"
    label = "charging"
    verbose_name = "Online charging"

    def ready(self):
        # Semi-online billing: rating's usage pipeline asks charging which CDRs were charged online.
        from tarifa.ledger import services as ledger
        from tarifa.rating import usage

        from . import services

        usage.register_online_charging(services.SEMI_ONLINE)
        # A switch of payment mode settles the account's open sessions in the same transaction.
        ledger.on_payment_mode_switch(services.settle_on_switch)
