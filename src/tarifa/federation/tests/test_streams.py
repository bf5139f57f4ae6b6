"""The stream protocol on PostgreSQL: the inbox rule (in order, duplicate, gap → 409, unreadable → 422,
stored), the relay's answers to it (rewind after a receiver lost messages, alarm when it expects more
than was ever sent, a refused type stops the stream until resumed), and the signed endpoint.

One database plays both nodes: node A's outbox and node B's inbox are different tables, and the
settings say which node is speaking (`as_node`)."""

import datetime as dt
import json
import uuid
from contextlib import contextmanager

import pytest
from django.test import override_settings

from tarifa.federation import handlers, relay, selectors, services, signatures
from tarifa.federation.models import InboundMessage, InboundStream, Node, OutboundMessage, OutboundStream
from tarifa.kernel.clock import now
from tarifa.kernel.errors import DomainError

pytestmark = pytest.mark.django_db


@contextmanager
def as_node(code):
    with override_settings(TARIFA_NODE_CODE=code, TARIFA_NODE_ROLE="branch"):
        yield


def envelope(seq, *, type="ping", payload=None, version=1, message_id=None, sender="A", kind="test"):
    return handlers.Message(message_id=message_id or uuid.uuid4(), sender=sender, receiver="B", kind=kind,
                            stream_seq=seq, type=type, schema_version=version, payload=payload or {"n": seq},
                            created_at=now())


def receive(message):
    with as_node("B"):
        return services.receive(message)


def applied_seqs(sender="A", kind="test"):
    return list(InboundMessage.objects.filter(sender=sender, kind=kind).order_by("stream_seq")
                .values_list("stream_seq", flat=True))


# --- the inbox rule ---

def test_messages_apply_in_order_and_a_duplicate_gets_the_stored_result_and_changes_nothing():
    first = envelope(1)
    assert receive(first) == (200, {"status": "applied", "next_expected": 2,
                                    "result": {"pong": {"n": 1}, "stream_seq": 1}})
    assert receive(envelope(2))[0] == 200
    status, body = receive(first)
    assert (status, body) == (200, {"status": "duplicate", "next_expected": 3,
                                    "result": {"pong": {"n": 1}, "stream_seq": 1}})
    assert applied_seqs() == [1, 2]
    assert InboundStream.objects.get(sender="A", kind="test").next_expected == 3


def test_a_message_after_a_gap_is_refused_with_409_and_the_expected_number():
    receive(envelope(1))
    status, body = receive(envelope(3))
    assert status == 409 and body["expected"] == 2 and body["error"]["code"] == "out_of_order"
    assert applied_seqs() == [1]


def test_a_reused_number_with_another_message_id_is_a_conflict_not_a_duplicate():
    receive(envelope(1))
    status, body = receive(envelope(1))  # a new message_id under an old number: the sender renumbered
    assert status == 409 and body["error"]["code"] == "seq_conflict"
    assert applied_seqs() == [1]


def test_streams_are_independent_per_sender_and_kind():
    receive(envelope(1))
    assert receive(envelope(1, kind="other"))[1]["status"] == "applied"
    assert receive(envelope(1, sender="C"))[1]["status"] == "applied"


def test_an_unknown_type_or_a_newer_schema_is_refused_stored_and_the_stream_waits_at_it():
    receive(envelope(1))
    status, body = receive(envelope(2, type="nobody.knows"))
    assert status == 422 and body["error"]["code"] == "unknown_type" and body["expected"] == 2
    stream = InboundStream.objects.get(sender="A", kind="test")
    assert stream.refused_seq == 2 and "nobody.knows" in stream.last_error and stream.next_expected == 2
    assert [p["code"] for p in selectors.problems()] == ["message_refused"]
    assert receive(envelope(3))[0] == 409  # not skipped: the stream waits at 2
    status, body = receive(envelope(2, version=2))
    assert status == 422 and body["error"]["code"] == "schema_too_new"
    # This node learns the type (an upgrade): the same message now applies and the refusal is cleared.
    handlers.register("nobody.knows", lambda m: {"ok": True})
    try:
        assert receive(envelope(2, type="nobody.knows"))[1] == {"status": "applied", "next_expected": 3,
                                                               "result": {"ok": True}}
    finally:
        handlers.unregister("nobody.knows")
    assert selectors.problems() == []


def test_a_business_refusal_is_the_stored_answer_and_any_other_error_rolls_the_message_back():
    def refuse(message):
        InboundStream.objects.update(last_error="written by the handler")  # rolled back with the savepoint
        raise DomainError("No such subscriber.", code="unknown_subscriber")

    def crash(message):
        raise RuntimeError("bug")

    handlers.register("t.refuse", refuse)
    handlers.register("t.crash", crash)
    try:
        status, body = receive(envelope(1, type="t.refuse"))
        assert status == 200 and body["result"] == {"refused": {"code": "unknown_subscriber", "fields": {},
                                                                "message": "No such subscriber."}}
        assert InboundStream.objects.get().last_error == ""
        with pytest.raises(RuntimeError):
            receive(envelope(2, type="t.crash"))
    finally:
        handlers.unregister("t.refuse")
        handlers.unregister("t.crash")
    assert applied_seqs() == [1]
    assert InboundStream.objects.get().next_expected == 2


# --- the relay against the inbox (HTTP replaced by a direct call to node B) ---

@pytest.fixture
def peer_b(monkeypatch):
    """Node B in A's registry; the relay's POST goes straight to B's receive (as node B)."""
    with as_node("A"):
        services.create_node(actor="test", code="B", name="Branch B", role="branch", base_url="http://127.0.0.1:9")
    calls = []

    def post(node, message):
        calls.append(message.stream_seq)
        data = json.loads(json.dumps(message.envelope()))
        with as_node("B"):
            status, body = services.receive(services.parse_envelope(data, sender="A", kind=message.kind))
        error = body.get("error", {})
        return relay.Answer(status, body, f"HTTP {status} {error.get('code')}: {error.get('message')}" if error else "")

    monkeypatch.setattr(relay, "post", post)
    return calls


def send(n, *, type="ping", kind="test"):
    with as_node("A"):
        return [services.send(receiver="B", kind=kind, type=type, payload={"n": i}) for i in range(n)]


def run_relay():
    with as_node("A"):
        return relay.run("B")


def test_the_relay_numbers_at_first_send_and_delivers_once_in_order(peer_b):
    messages = send(3)
    assert all(m.stream_seq is None for m in messages)  # numbered by the relay, not in the business transaction
    assert run_relay()["sent"] == 3
    assert applied_seqs() == [1, 2, 3] and peer_b == [1, 2, 3]
    sent = OutboundMessage.objects.order_by("stream_seq")
    assert [(m.stream_seq, m.status, m.result["pong"]) for m in sent] == [
        (1, "sent", {"n": 0}), (2, "sent", {"n": 1}), (3, "sent", {"n": 2})]
    assert [m.id for m in sent] == [m.id for m in messages]  # creation order
    assert OutboundStream.objects.get(receiver="B").acked_seq == 3
    assert run_relay()["sent"] == 0  # nothing waits


def test_an_answer_lost_after_the_receiver_committed_is_a_duplicate_on_resend(peer_b):
    send(2)
    run_relay()
    OutboundMessage.objects.filter(stream_seq=2).update(status="pending", sent_at=None)  # the 200 was lost
    assert run_relay()["sent"] == 1
    assert applied_seqs() == [1, 2] and peer_b == [1, 2, 2]


def test_a_receiver_that_lost_messages_answers_409_and_the_relay_resends_from_there(peer_b):
    send(3)
    run_relay()
    # B is restored from a backup taken after message 1: it expects 2 again.
    InboundMessage.objects.filter(stream_seq__gte=2).delete()
    InboundStream.objects.update(next_expected=2)
    send(1)
    assert run_relay()["sent"] == 3
    assert peer_b == [1, 2, 3, 4, 2, 3, 4]
    assert applied_seqs() == [1, 2, 3, 4]
    assert selectors.problems() == []


def test_a_receiver_expecting_more_than_was_ever_sent_stops_the_stream_with_an_alarm(peer_b):
    send(2)
    run_relay()
    InboundStream.objects.update(next_expected=10)  # A went back in time (or B is someone else's)
    send(2)
    result = run_relay()
    assert result["stopped"] and result["sent"] == 0
    stream = OutboundStream.objects.get(receiver="B")
    assert stream.stopped_at and "expects message 10" in stream.stop_reason
    assert [p["code"] for p in selectors.problems()] == ["stream_stopped"]
    assert run_relay()["sent"] == 0  # a stopped stream sends nothing
    assert OutboundMessage.objects.filter(status="pending").count() == 2


def test_a_refused_type_fails_the_message_stops_its_stream_and_resume_sends_it_again(peer_b):
    send(1)
    send(1, type="later.type")
    send(1)
    result = run_relay()
    assert result["stopped"] and applied_seqs() == [1]
    failed = OutboundMessage.objects.get(type="later.type")
    assert failed.status == "failed" and "unknown_type" in failed.last_error
    assert OutboundMessage.objects.get(stream_seq=3).status == "pending"  # never skipped
    assert {p["code"] for p in selectors.problems()} == {"stream_stopped", "message_refused"}
    handlers.register("later.type", lambda m: {"ok": 1})
    try:
        with as_node("A"):
            assert services.resume_stream(Node.objects.get(code="B"), actor="test") == 1
        assert run_relay()["sent"] == 2
    finally:
        handlers.unregister("later.type")
    assert applied_seqs() == [1, 2, 3] and selectors.problems() == []


def test_a_peer_that_does_not_answer_is_retried_with_capped_exponential_back_off(monkeypatch):
    with as_node("A"):
        services.create_node(actor="test", code="B", name="Branch B", role="branch", base_url="http://127.0.0.1:9")
    monkeypatch.setattr(relay, "post", lambda node, message: relay.Answer(0, {}, "no answer: connection refused"))
    from procrastinate.contrib.django.models import ProcrastinateJob

    send(2)
    jobs = ProcrastinateJob.objects.filter(task_name="federation.relay", status="todo")
    assert jobs.count() == 1  # two sends, one relay waiting (the queueing lock)
    jobs.update(status="doing")  # a worker took it and runs it now
    with override_settings(TARIFA_FEDERATION_RETRY_BASE=2, TARIFA_FEDERATION_RETRY_MAX=5):
        result = run_relay()
        assert result["retry_at"] is not None and result["sent"] == 0
        first = OutboundMessage.objects.get(stream_seq=1)
        assert first.attempts == 1 and "connection refused" in first.last_error
        assert [services.backoff(n) for n in (1, 2, 3, 4)] == [2, 4, 5, 5]
        assert run_relay()["sent"] == 0  # not due yet: the run only schedules the next
        assert OutboundMessage.objects.get(stream_seq=1).attempts == 1
    jobs = ProcrastinateJob.objects.filter(task_name="federation.relay", status="todo")
    # The next run waits for the back-off: one job per destination, scheduled.
    assert jobs.count() == 1 and jobs.get().scheduled_at == OutboundMessage.objects.get(stream_seq=1).next_attempt_at


# --- the endpoint: a signed request from the node whose key signed it ---

def signed_post(client, *, sender, kind, body, key, key_id, path=None, created=None):
    path = path or f"/federation/v1/streams/{sender}/{kind}/messages"
    raw = json.dumps(body).encode()
    headers = signatures.sign_request(method="POST", path=path, body=raw, key_id=key_id, private_key=key,
                                      created=created)
    return client.post(path, data=raw, content_type="application/json",
                       headers={k: v for k, v in headers.items()})


@pytest.fixture
def b_knows_a():
    key = signatures.generate_private_key()
    with as_node("B"):
        node = services.create_node(actor="test", code="A", name="Branch A", base_url="http://127.0.0.1:9")
        services.add_node_key(node, actor="test", key_id="A.k1", public_key=signatures.public_to_text(key.public_key()))
        services.create_node(actor="test", code="C", name="Branch C", base_url="http://127.0.0.1:9")
    return node, key


def body(seq, sender="A", kind="test"):
    return {"message_id": str(uuid.uuid4()), "sender": sender, "receiver": "B", "kind": kind, "stream_seq": seq,
            "type": "ping", "schema_version": 1, "payload": {}, "created_at": now().isoformat()}


def test_the_endpoint_applies_a_signed_message_and_refuses_a_node_posting_another_nodes_stream(client, b_knows_a):
    node, key = b_knows_a
    with as_node("B"):
        response = signed_post(client, sender="A", kind="test", body=body(1), key=key, key_id="A.k1")
        assert response.status_code == 200, response.content
        assert response.json()["next_expected"] == 2
        response = signed_post(client, sender="C", kind="test", body=body(1, sender="C"), key=key, key_id="A.k1")
        assert response.status_code == 403 and response.json()["error"]["code"] == "not_the_sender"
        response = signed_post(client, sender="A", kind="test", body=body(2), key=signatures.generate_private_key(),
                               key_id="A.k1")
        assert response.status_code == 401 and response.json()["error"]["code"] == "bad_signature"
        response = signed_post(client, sender="A", kind="test", body=body(2), key=key, key_id="A.k1",
                               created=int(now().timestamp()) - 600)
        assert response.status_code == 401 and response.json()["error"]["code"] == "stale_signature"
        response = client.post("/federation/v1/streams/A/test/messages", data=json.dumps(body(2)),
                               content_type="application/json")
        assert response.status_code == 401 and response.json()["error"]["code"] == "unsigned"
    assert applied_seqs() == [1]


def test_a_rotated_key_is_accepted_in_its_window_and_the_old_one_until_its_end(client, b_knows_a):
    node, old = b_knows_a
    new = signatures.generate_private_key()
    with as_node("B"):
        services.add_node_key(node, actor="test", key_id="A.k2", public_key=signatures.public_to_text(new.public_key()))
        assert signed_post(client, sender="A", kind="test", body=body(1), key=old, key_id="A.k1").status_code == 200
        assert signed_post(client, sender="A", kind="test", body=body(2), key=new, key_id="A.k2").status_code == 200
        services.end_node_key(node, actor="test", key_id="A.k1", valid_until=now() - dt.timedelta(seconds=1))
        response = signed_post(client, sender="A", kind="test", body=body(3), key=old, key_id="A.k1")
        assert response.status_code == 401 and response.json()["error"]["code"] == "unknown_key"
        assert signed_post(client, sender="A", kind="test", body=body(3), key=new, key_id="A.k2").status_code == 200
        services.archive_node(node, actor="test", reason="left the federation")
        response = signed_post(client, sender="A", kind="test", body=body(4), key=new, key_id="A.k2")
        assert response.status_code == 401
    assert applied_seqs() == [1, 2, 3]


def test_a_standalone_installation_takes_and_sends_nothing(client):
    with override_settings(TARIFA_NODE_ROLE="standalone"):
        assert client.post("/federation/v1/streams/A/test/messages", data="{}",
                           content_type="application/json").status_code == 404
        with pytest.raises(services.FederationDisabled):
            services.send(receiver="B", kind="test", type="ping", payload={})


def test_the_own_signing_key_is_made_once_and_stored_encrypted():
    from django.db import connection

    with as_node("A"):
        key = services.own_signing_key()
        assert services.own_signing_key().pk == key.pk
        assert key.key_id.startswith("A.")
    with connection.cursor() as cursor:
        cursor.execute("SELECT private_key FROM federation_signingkey")
        stored = cursor.fetchone()[0]
    assert stored.startswith("enc1:") and signatures.private_to_text(
        signatures.private_from_text(key.private_key)) == key.private_key


# --- the registry through the API, audited; this node's public keys; the status command ---

def test_nodes_and_keys_are_managed_through_the_api_with_permissions_and_audit(api, make_user):
    from tarifa.audit.models import AuditEvent

    key = signatures.public_to_text(signatures.generate_private_key().public_key())
    viewer = api(make_user("federation.view_node"))
    admin = api(make_user("federation.view_node", "federation.view_nodekey", "federation.add_node",
                          "federation.add_nodekey"))
    new = {"code": "B7", "name": "Branch 7", "role": "branch", "base_url": "https://b7.example.net"}
    assert viewer.post("/api/v1/federation/nodes/", new, format="json").status_code == 403
    response = admin.post("/api/v1/federation/nodes/", new, format="json")
    assert response.status_code == 201, response.content
    node_id = response.json()["id"]
    response = admin.post(f"/api/v1/federation/nodes/{node_id}/keys/", {"key_id": "B7.k1", "public_key": key},
                          format="json")
    assert response.status_code == 201 and response.json()["keys"][0]["key_id"] == "B7.k1"
    bad = admin.post(f"/api/v1/federation/nodes/{node_id}/keys/", {"key_id": "B7.k2", "public_key": "nope"},
                     format="json")
    assert bad.status_code == 400 and "public_key" in bad.json()["error"]["fields"]
    actions = set(AuditEvent.objects.filter(object_id=node_id).values_list("action", flat=True))
    assert {"create", "add_key"} <= actions
    assert viewer.get(f"/api/v1/federation/nodes/{node_id}/streams/").json() == {
        "outbound": [], "inbound": [], "not_yet_numbered": 0}
    status = viewer.get("/api/v1/federation/status/").json()
    assert status["problems"] == [] and status["role"] == "standalone"


def test_a_node_publishes_its_code_role_and_public_keys(client):
    with as_node("A"):
        body = client.get("/federation/v1/node").json()
    assert body["code"] == "A" and body["role"] == "branch" and len(body["keys"]) == 1
    signatures.public_from_text(body["keys"][0]["public_key"])
    assert "private" not in json.dumps(body)


def test_the_status_command_exits_1_on_a_problem(capsys):
    from django.core.management import call_command

    with as_node("A"):
        call_command("federation", "status")
        assert json.loads(capsys.readouterr().out)["ok"] is True
        services.stop_stream("B", "test", "a test alarm")
        with pytest.raises(SystemExit) as exc:
            call_command("federation", "status")
    assert exc.value.code == 1
    assert json.loads(capsys.readouterr().out)["problems"][0]["code"] == "stream_stopped"


@pytest.mark.django_db(transaction=True)
def test_resume_through_the_api_runs_in_its_own_transaction():
    """The API fuzzing found a 500: resume_stream locked streams (select_for_update) outside a transaction."""
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    node = services.create_node(actor="test", code="B9", name="Branch 9", role="branch", base_url="http://127.0.0.1:9")
    admin = get_user_model().objects.create_superuser("resumer", "resumer@example.org", "Resume-pass-word-91")
    client = APIClient()
    client.force_authenticate(admin)
    answer = client.post(f"/api/v1/federation/nodes/{node.pk}/resume/", {}, format="json")
    assert answer.status_code == 200 and answer.json()["outbound"] == []
