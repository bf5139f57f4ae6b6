"""End to end: two nodes as real processes (`tarifa run`: web server and job worker), each on its own
database, on loopback. Pings sent at A arrive at B once and in order, also when B was stopped meanwhile
and started again (A's relay retries with back-off until B answers)."""

import json
import subprocess
import time
import uuid

import psycopg
import pytest

from tarifa.testing.processes import TARIFA, Running, child_env, free_port, server_url, wait_healthy

START_TIMEOUT = 600  # seconds: migrating a new database is most of it (about 10 s on an idle machine)
DELIVERY_TIMEOUT = 90


def node_env(database_url, port, code):
    env = child_env(database_url, port)
    env.update(TARIFA_NODE_ROLE="branch", TARIFA_NODE_CODE=code, TARIFA_BRANCH_CODE=code,
               TARIFA_BRANCH_NAME=f"Branch {code}", TARIFA_AAA_ENABLED="0",
               TARIFA_FEDERATION_RETRY_BASE="0.5", TARIFA_FEDERATION_RETRY_MAX="2", TARIFA_FEDERATION_TIMEOUT="5")
    return env


def tarifa(env, *args) -> dict:
    done = subprocess.run([str(TARIFA), "federation", *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def query(url, sql, params=()):
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def wait_until(check, what, timeout=DELIVERY_TIMEOUT, interval=0.25, nodes=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for node in nodes:
            assert node.process.poll() is None, f"a node exited:\n{node.output}"
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"not within {timeout} s: {what}\n" + "\n".join(n.output[-3000:] for n in nodes))


@pytest.fixture
def two_databases(fresh_database):
    """Two databases with the schema: the first migrated, the second created from it as a template (half the
    migrating on a busy machine)."""
    env = child_env(fresh_database, free_port())
    done = subprocess.run([str(TARIFA), "migrate", "--no-input", "-v", "0"], env=env, capture_output=True, text=True,
                          timeout=START_TIMEOUT)
    assert done.returncode == 0, done.stdout + done.stderr
    name = f"tarifa_run_{uuid.uuid4().hex[:10]}"
    first = fresh_database.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{first}"')
    try:
        yield fresh_database, server_url(name)
    finally:
        with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def inbox(url):
    return query(url, "SELECT stream_seq, message_id::text, payload->>'n' FROM federation_inboundmessage "
                      "WHERE sender = 'A' AND kind = 'test' ORDER BY stream_seq")


def outbox(url):
    return query(url, "SELECT stream_seq, id::text, status, attempts FROM federation_outboundmessage "
                      "WHERE receiver = 'B' ORDER BY created_at, id")


def test_messages_sent_at_one_node_arrive_once_in_order_at_the_other_across_a_restart(two_databases):
    db_a, db_b = two_databases
    port_a, port_b = free_port(), free_port()
    env_a, env_b = node_env(db_a, port_a, "A"), node_env(db_b, port_b, "B")
    a = Running(env_a, ["--no-demo"])
    b = Running(env_b, ["--no-demo"])
    try:
        a.wait_for("Press Ctrl-C to stop.", START_TIMEOUT)
        b.wait_for("Press Ctrl-C to stop.", START_TIMEOUT)
        wait_healthy(f"http://127.0.0.1:{port_a}", a)
        wait_healthy(f"http://127.0.0.1:{port_b}", b)

        # Each node's key, registered at the other (what an operator does with `tarifa federation`).
        key_a, key_b = tarifa(env_a, "key")["keys"][0], tarifa(env_b, "key")["keys"][0]
        tarifa(env_a, "add-node", "--code", "B", "--name", "Branch B", "--url", f"http://127.0.0.1:{port_b}",
               "--key-id", key_b["key_id"], "--public-key", key_b["public_key"])
        tarifa(env_b, "add-node", "--code", "A", "--name", "Branch A", "--url", f"http://127.0.0.1:{port_a}",
               "--key-id", key_a["key_id"], "--public-key", key_a["public_key"])

        assert tarifa(env_a, "ping", "--to", "B", "--count", "5")["sent"] == 5
        wait_until(lambda: len(inbox(db_b)) == 5, "5 pings applied at B", nodes=(a, b))
        wait_until(lambda: all(row[2] == "sent" for row in outbox(db_a)), "A's outbox acknowledged", nodes=(a, b))

        # B stops; A keeps accepting messages for it and retries.
        assert b.stop() == 0
        assert tarifa(env_a, "ping", "--to", "B", "--count", "5")["sent"] == 5
        wait_until(lambda: any(row[3] >= 2 and row[2] == "pending" for row in outbox(db_a)),
                   "A's relay retried while B was down", nodes=(a,))
        problems = query(db_a, "SELECT count(*) FROM federation_outboundmessage WHERE last_error LIKE '%%no answer%%'")
        assert problems[0][0] >= 1

        b = Running(env_b, ["--no-demo"])
        b.wait_for("Press Ctrl-C to stop.", START_TIMEOUT)
        wait_until(lambda: len(inbox(db_b)) == 10, "all 10 pings applied at B after its restart", nodes=(a, b))
        wait_until(lambda: all(row[2] == "sent" for row in outbox(db_a)), "A's outbox acknowledged", nodes=(a, b))

        sent = outbox(db_a)
        received = inbox(db_b)
        # Once each, in order: B's stream runs 1..10 with A's message ids in A's creation order.
        assert [r[0] for r in received] == list(range(1, 11))
        assert [r[1] for r in received] == [s[1] for s in sent]
        assert [s[0] for s in sent] == list(range(1, 11))
        assert [r[2] for r in received] == [str(n) for n in range(1, 6)] * 2
        assert query(db_b, "SELECT next_expected FROM federation_inboundstream WHERE sender = 'A'") == [(11,)]
        status = subprocess.run([str(TARIFA), "federation", "status"], env=env_a, capture_output=True, text=True,
                                timeout=120)
        assert status.returncode == 0 and json.loads(status.stdout)["problems"] == [], status.stdout
    finally:
        for node in (a, b):
            if node.process.poll() is None:
                node.stop()
            node.kill()
