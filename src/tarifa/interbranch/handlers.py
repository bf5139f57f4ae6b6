"""Message types of serving another branch's subscriber, registered with federation."""

from tarifa.federation import handlers

from . import services


@handlers.register(services.MESSAGE_TYPE, version=1)
def foreign_payment(message: handlers.Message) -> dict:
    return services.apply_received_payment(sender=message.sender, payload=message.payload)


handlers.on_result(services.MESSAGE_TYPE, services.record_result)
