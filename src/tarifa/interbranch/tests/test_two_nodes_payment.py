"""End to end: two branches as real processes (`tarifa run`: web server and job worker), each on its own
database, on loopback. A payment taken at B for a subscriber of A is applied at A's account once — also
when B's relay sends the message again (as after being killed between A's answer and marking it sent) —
and B's record shows A's payment number; a payment for an account A does not have comes back refused
and is refunded at B. B finds A's subscriber and reads A's card live, then (A stopped) the last known card
marked stale with what is pending at B."""

import json
import subprocess
import urllib.error
import urllib.request
import uuid
from decimal import Decimal

from tarifa.federation.tests.test_two_nodes import (START_TIMEOUT, node_env, query, tarifa, two_databases,  # noqa: F401
                                                    wait_until)
from tarifa.testing.processes import ADMIN_PASSWORD, TARIFA, Running, free_port, obtain_token, wait_healthy


def call(base, token, method, path, body=None, key=None):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    request = urllib.request.Request(base + path, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def foreign(db, number):
    rows = query(db, "SELECT status, remote_payment_number, refusal_code FROM interbranch_foreignpayment "
                     "WHERE number = %s", (number,))
    return rows[0] if rows else None


def applied_at_a(db, account_number):
    return query(db, "SELECT p.number, p.amount, la.code, l.debits_posted - l.credits_posted "
                     "FROM payments_payment p JOIN ledger_billingaccount b ON b.id = p.billing_account_id "
                     "JOIN ledger_ledgeraccount la ON la.id = p.debit_account_id "
                     "JOIN ledger_ledgeraccount l ON l.id = b.ledger_account_id WHERE b.number = %s", (account_number,))


def test_a_payment_taken_at_b_is_applied_once_at_a_and_a_refusal_comes_back(two_databases):  # noqa: F811
    db_a, db_b = two_databases
    port_a, port_b = free_port(), free_port()
    env_a, env_b = node_env(db_a, port_a, "A"), node_env(db_b, port_b, "B")
    base_a, base_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    a = Running(env_a, ["--no-demo"])
    b = Running(env_b, ["--no-demo"])
    try:
        a.wait_for("Press Ctrl-C to stop.", START_TIMEOUT)
        b.wait_for("Press Ctrl-C to stop.", START_TIMEOUT)
        wait_healthy(base_a, a)
        wait_healthy(base_b, b)
        key_a, key_b = tarifa(env_a, "key")["keys"][0], tarifa(env_b, "key")["keys"][0]
        tarifa(env_a, "add-node", "--code", "B", "--name", "Branch B", "--url", base_b,
               "--key-id", key_b["key_id"], "--public-key", key_b["public_key"])
        tarifa(env_b, "add-node", "--code", "A", "--name", "Branch A", "--url", base_a,
               "--key-id", key_a["key_id"], "--public-key", key_a["public_key"])
        token_a = obtain_token(base_a, "admin", ADMIN_PASSWORD)[1]["token"]
        token_b = obtain_token(base_b, "admin", ADMIN_PASSWORD)[1]["token"]

        status, customer = call(base_a, token_a, "POST", "/api/v1/customers/",
                                {"kind": "individual", "first_name": "Anna", "last_name": "Owner",
                                 "account": {"currency": "USD"}})
        assert status == 201, customer
        number = customer["billing_accounts"][0]["number"]
        assert number.startswith("A-")

        # B takes the payment (the owner's number tells B where it goes).
        status, fp = call(base_b, token_b, "POST", "/api/v1/foreign-payments/",
                          {"account": number, "amount": "15.00", "currency": "USD", "channel": "cash",
                           "payer": "Anna's neighbour"}, key=str(uuid.uuid4()))
        assert status == 201 and fp["status"] == "pending" and fp["owner_branch"] == "A", fp
        wait_until(lambda: foreign(db_b, fp["number"])[0] == "applied", "B's record applied", nodes=(a, b))
        (payment_number, amount, due_from, balance), = applied_at_a(db_a, number)
        assert (amount, due_from, balance) == (Decimal("15"), "due_from:B", Decimal("-15"))  # credits over debits
        assert foreign(db_b, fp["number"])[1] == payment_number
        status, account = call(base_a, token_a, "GET", f"/api/v1/accounts/{customer['billing_accounts'][0]['id']}/")
        assert Decimal(account["balance"]) == Decimal("15.00")

        # B's relay loses A's answer (killed after A's 200, before marking the message sent): it sends again.
        query(db_b, "UPDATE federation_outboundmessage SET status = 'pending' WHERE id = %s RETURNING id",
              (fp["message_id"],))
        sent = tarifa(env_b, "relay", "--to", "A")
        assert sent["sent"] in (0, 1)  # 0 when B's worker resent it first
        wait_until(lambda: query(db_b, "SELECT status FROM federation_outboundmessage WHERE id = %s",
                                 (fp["message_id"],)) == [("sent",)], "the resent message acknowledged", nodes=(a, b))
        assert len(applied_at_a(db_a, number)) == 1  # applied once
        assert query(db_a, "SELECT count(*) FROM federation_inboundmessage WHERE sender = 'B' AND kind = 'payments'"
                     ) == [(1,)]
        assert foreign(db_b, fp["number"])[:2] == ("applied", payment_number)

        # A payment for an account A does not have: refused there, the refusal shown at B, refunded at B.
        status, lost = call(base_b, token_b, "POST", "/api/v1/foreign-payments/",
                            {"account": "A-A0099999", "amount": "4.00", "currency": "USD", "channel": "cash"},
                            key=str(uuid.uuid4()))
        assert status == 201, lost
        wait_until(lambda: foreign(db_b, lost["number"])[0] == "refused", "the refusal back at B", nodes=(a, b))
        assert foreign(db_b, lost["number"])[2] == "account_not_found"
        status, refunded = call(base_b, token_b, "POST", f"/api/v1/foreign-payments/{lost['id']}/refund/", {})
        assert status == 200 and refunded["status"] == "refunded", refunded

        # Both ledgers hold; what B owes A equals what A is owed by B.
        for env in (env_a, env_b):
            check = subprocess.run([str(TARIFA), "ledger", "check"], env=env, capture_output=True, text=True,
                                   timeout=120)
            assert check.returncode == 0, check.stdout + check.stderr
        owed = query(db_b, "SELECT credits_posted - debits_posted FROM ledger_ledgeraccount WHERE code = 'due_to:A'")
        owing = query(db_a, "SELECT debits_posted - credits_posted FROM ledger_ledgeraccount WHERE code = 'due_from:B'")
        assert owed == owing == [(Decimal("15"),)]

        # Cross-branch reads: B finds A's subscriber and A's live card, then the last known card once A is down.
        status, found = call(base_b, token_b, "GET", f"/api/v1/federation/search/?q={number}")
        assert status == 200 and [(r["branch"], r["customer"]) for r in found["results"]] == [
            ("A", customer["number"])], found
        status, card = call(base_b, token_b, "GET", f"/api/v1/federation/subscribers/A/{number}/")
        assert status == 200 and card["live"] is True, card
        assert Decimal(card["card"]["accounts"][0]["balance"]) == Decimal("15.00")
        assert a.stop() == 0
        status, waiting = call(base_b, token_b, "POST", "/api/v1/foreign-payments/",
                               {"account": number, "amount": "3.00", "currency": "USD", "channel": "cash"},
                               key=str(uuid.uuid4()))
        assert status == 201 and waiting["status"] == "pending", waiting  # accepted while A is down
        status, card = call(base_b, token_b, "GET", f"/api/v1/federation/subscribers/A/{number}/")
        assert status == 200 and card["live"] is False and card["fetched_at"], card
        assert Decimal(card["card"]["accounts"][0]["balance"]) == Decimal("15.00")
        assert [p["number"] for p in card["pending"]] == [waiting["number"]]
        status, found = call(base_b, token_b, "GET", f"/api/v1/federation/search/?q={number}")
        assert status == 200 and found["results"] == [] and "A" in found["unreachable"], found
    finally:
        for node in (a, b):
            if node.process.poll() is None:
                node.stop()
            node.kill()
