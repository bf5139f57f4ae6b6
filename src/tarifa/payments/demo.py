"""Demo payments through the services: cashiers and desks, a closed shift with a shortage and an
open one, hand-overs, a terminal network's check/pay, the built-in TEST card provider and a card
payment confirmed by its signed webhook with the card stored and an automatic top-up, a bank statement (booked, unmatched,
duplicate, rejected lines), vouchers sold and redeemed, a refund and a reversal.
Loading twice changes nothing."""

import datetime as dt
import json

from tarifa.identity import services as identity
from tarifa.identity.models import Role, User
from tarifa.kernel.clock import now, today
from tarifa.ledger import services as ledger
from tarifa.ledger.models import BillingAccount

from . import services
from .gateways import testcards
from .gateways.reference import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from .models import Payment, PaymentGateway
from .services import terminals

KEY = "demo-payments"

ROLES = {
    "Cashiers": ["payments.operate_cash_desk", "payments.view_payment", "payments.add_payment",
                 "payments.view_cashdesk", "payments.view_cashiershift", "payments.add_cashhandover",
                 "payments.view_cashhandover", "payments.view_refund", "payments.redeem_voucher",
                 "payments.view_voucher", "crm.view_customer", "ledger.view_billingaccount"],
    "Payments back office": ["payments.view_all_desks", "payments.view_payment", "payments.add_payment",
                             "payments.reverse", "payments.refund", "payments.view_refund", "payments.view_cashdesk",
                             "payments.view_cashiershift", "payments.view_cashhandover",
                             "payments.view_bankstatement", "payments.add_bankstatement",
                             "payments.view_bankstatementline", "payments.resolve_statement_line",
                             "payments.view_paymentgateway", "payments.view_terminaltransaction",
                             "payments.view_cardcheckout", "payments.view_voucherbatch",
                             "payments.add_voucherbatch", "payments.sell_voucherbatch", "payments.view_voucher",
                             "payments.view_autopayagreement", "payments.view_autopayrun"],
}
CASHIERS = [("carla.cashier", "Carla", "Cashier"), ("ben.cashier", "Ben", "Cashier")]


def _key(name):
    return f"{KEY}:{name}"


def _users(actor) -> dict:
    roles = {}
    for name, perms in ROLES.items():
        roles[name] = Role.objects.filter(name=name).first() or identity.create_role(
            actor=actor, name=name, description=f"Demo role: {name.lower()}.",
            permissions=identity.permissions_by_name(perms))
    users = {}
    for username, first, last in CASHIERS:
        users[username] = User.objects.filter(username=username).first() or identity.create_user(
            actor=actor, username=username, first_name=first, last_name=last, email=f"{username}@example.com",
            roles=[roles["Cashiers"]])
    return users


def _accounts(actor, currency) -> list:
    accounts = list(BillingAccount.objects.filter(status="active", currency=currency).order_by("number")[:6])
    while len(accounts) < 3:
        customer = ledger.register_customer(actor=actor, kind="individual", first_name="Demo",
                                            last_name=f"Payer {len(accounts) + 1}", currency=currency)
        accounts.append(customer.billing_accounts.get())
    return accounts


STATEMENT = """date,amount,currency,reference,payer,bank_txn_id
{day},120.00,{cur},Payment for account {a0},ACME LOGISTICS LLC,DEMO-BANK-0001
{day},35.50,{cur},Customer {c1} monthly,J SMITH,DEMO-BANK-0002
{day},80.00,{cur},Invoice 2024-117 thanks,UNKNOWN PAYER LTD,DEMO-BANK-0003
{day},120.00,{cur},Payment for account {a0},ACME LOGISTICS LLC,DEMO-BANK-0001
{day},12.00,{cur},Refund of deposit,SOMEONE,DEMO-BANK-0004
{day},not-a-number,{cur},Garbled line,?,DEMO-BANK-0005
{day},-40.00,{cur},Bank fee,BANK,DEMO-BANK-0006
"""


def load(*, actor) -> dict:
    if PaymentGateway.objects.filter(code="QPAY").exists():
        return _summary()
    usd = ledger.default_currency()
    users = _users(actor)
    carla, ben = users["carla.cashier"], users["ben.cashier"]
    accounts = _accounts(actor, usd)
    a0, a1, a2 = accounts[0], accounts[1], accounts[2]

    # Cash desks, worked by the demo cashiers themselves (admin has no shift: they open their own
    # at the cashier page): Carla's shift at the front desk is closed with a 5.00 shortage; Ben's
    # at the kiosk is open.
    front = services.create_cash_desk(actor=actor, code="DESK1", name="Front desk", currency=usd,
                                      location="Main office, ground floor", cashiers=[carla, ben])
    kiosk = services.create_cash_desk(actor=actor, code="DESK2", name="Mall kiosk", currency=usd,
                                      location="Springfield Mall", cashiers=[ben])
    shift = services.open_shift(actor=carla, desk=front, opening_float="100.00")
    for i, (account, amount) in enumerate([(a0, "20.00"), (a1, "45.00"), (a2, "15.50")]):
        services.accept_payment(actor=carla, account=account, amount=amount, channel="cash", shift=shift,
                                idempotency_key=_key(f"cash:{i}"), payer=account.customer.display_name)
    expected = services.expected_cash(shift)
    services.close_shift(shift, actor=carla, counted_cash=expected - 5, note="Counted twice; 5.00 short.")
    services.hand_over_cash(actor=carla, from_desk=front, amount="60.00", destination="bank",
                            bank_reference="DEP-0001", note="Evening deposit", idempotency_key=_key("deposit"))
    open_shift = services.open_shift(actor=ben, desk=kiosk, opening_float="50.00")
    services.accept_payment(actor=ben, account=a1, amount="10.00", channel="cash", shift=open_shift,
                            idempotency_key=_key("cash:kiosk"))
    services.hand_over_cash(actor=ben, from_desk=kiosk, amount="10.00", destination="desk", to_desk=front,
                            received_by=carla, idempotency_key=_key("to-front"), note="Kiosk takings to the front desk")

    # A terminal network: check, then pay.
    qpay, _secret = services.create_gateway(actor=actor, code="QPAY", name="QuickPay kiosks", kind="terminal",
                                            currency=usd, min_amount="1.00", max_amount="1000.00")
    for i, account in enumerate([a0, a2]):
        params = {"command": "check", "txn_id": f"QP-{1000 + i}", "account": account.number, "sum": "25.00"}
        terminals.check(qpay, params)
        terminals.pay(qpay, {**params, "command": "pay", "txn_date": now().strftime("%Y%m%d%H%M%S")})
    terminals.check(qpay, {"command": "check", "txn_id": "QP-1002", "account": a1.number, "sum": "5.00"})

    # Card payments through the built-in TEST provider (a payment page served by Tarifa itself:
    # an account's "Card payment" → the page → a test card → the signed webhook applies it), a
    # checkout already paid with the card stored, and an automatic top-up from that card. Where
    # the test provider is switched off, the same story runs on the simulated adapter.
    adapter = "test" if testcards.enabled() else "simulated"
    cards, _secret = services.create_gateway(actor=actor, code="TESTCARD", kind="card", adapter=adapter,
                                             name="Test card provider (TEST — no real money)", currency=usd,
                                             min_amount="1.00", max_amount="1000.00")
    checkout = services.start_card_checkout(actor=actor, account=a2, amount="30.00", gateway=cards, save_card=True,
                                            notify_url="http://127.0.0.1:8000/api/v1/gateways/TESTCARD/webhook/",
                                            return_url="http://127.0.0.1:8000/", idempotency_key=_key("checkout"))
    body = json.dumps({"event": "payment.succeeded", "order": str(checkout.pk), "txn_id": f"TEST-{checkout.pk}",
                       "amount": "30.00", "currency": usd, "card_token": "tok_demo_4242",
                       "card_label": "VISA •••• 4242 (TEST)"}).encode()
    ts = str(int(now().timestamp()))
    services.handle_webhook(cards.code, {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: f"sha256={sign(cards.hmac_secret, ts, body)}"},
                            body)
    method = a2.payment_methods.get()
    services.create_agreement(actor=actor, billing_account=a2, payment_method=method, threshold="1000.00",
                              amount="20.00")
    services.run_autopay(actor="system:autopay")

    # A bank statement: booked, matched by customer number, unmatched, duplicate, rejected lines.
    content = STATEMENT.format(day=today().isoformat(), cur=usd, a0=a0.number, c1=a1.customer.number).encode()
    services.import_statement(actor=actor, filename="demo-statement.csv", content=content)

    # Vouchers: a batch sold to a dealer (one card redeemed) and a batch not yet on sale.
    batch, codes = services.generate_batch(actor=actor, count=10, nominal="10.00", currency=usd,
                                           expires_on=today() + dt.timedelta(days=365), note="Demo scratch cards")
    services.sell_batch(batch, actor=actor, paid_via="dealer", sold_to="Corner Shop")
    services.redeem_voucher(actor=actor, account=a0, code=codes[0][1])
    services.generate_batch(actor=actor, count=5, nominal="25.00", currency=usd,
                            expires_on=today() + dt.timedelta(days=180), note="Printed, not yet sold")

    # A refund and a reversal.
    overpaid = services.accept_payment(actor=actor, account=a1, amount="50.00", channel="bank_transfer",
                                       idempotency_key=_key("overpaid"), external_reference="double transfer")
    services.refund_payment(overpaid, actor=actor, amount="25.00", reason="Paid twice by mistake",
                            idempotency_key=_key("refund"))
    mistaken = services.accept_payment(actor=actor, account=a2, amount="12.00", channel="other",
                                       idempotency_key=_key("mistaken"), memo="Keyed to the wrong account")
    services.reverse_payment(mistaken, actor=actor, reason="Keyed to the wrong account")
    return _summary()


def _summary() -> dict:
    return {"payments": Payment.objects.count(), "gateways": PaymentGateway.objects.count()}
