"""End to end: a centre (`tarifa run`: web server and job worker) and a branch on their own databases, on
loopback. The branch pulls the centre's first release with `tarifa federation pull-releases`; the second,
published while the branch was stopped, arrives through the branch worker's periodic pull once it runs
again. The branch's reference data is then the centre's, and the branch refuses a local catalog import."""

import json
import subprocess
from pathlib import Path

from tarifa.federation.tests import test_two_nodes as federation_nodes
from tarifa.federation.tests.test_two_nodes import START_TIMEOUT, node_env, query, tarifa, wait_until
from tarifa.testing.processes import TARIFA, Running, free_port, wait_healthy

two_databases = federation_nodes.two_databases  # the fixture: two migrated databases

CATALOG = {
    "format": "tarifa-catalog", "version": 1,
    "service_types": [{"code": "inet", "name": "Internet", "category": "internet"}],
    "services": [{"code": "home", "name": "Home internet", "service_type": "inet"}],
    "tariffs": [{"code": "fast", "name": "Fast", "service": "home", "currency": "EUR",
                 "price_versions": [{"valid_from": "2026-01-01", "recurring_fee": "25.00"}]}],
}


def run(env, *args):
    return subprocess.run([str(TARIFA), *args], env=env, capture_output=True, text=True, timeout=180)


def branch_tariffs(db):
    return query(db, "SELECT code, name, branch, archived_at IS NULL FROM catalog_tariff ORDER BY code")


def test_a_branch_pulls_the_centres_releases_and_catches_up_after_being_down(two_databases, tmp_path: Path):
    db_c, db_b = two_databases
    port_c, port_b = free_port(), free_port()
    env_c = {**node_env(db_c, port_c, "C"), "TARIFA_NODE_ROLE": "centre"}
    env_b = node_env(db_b, port_b, "B1")
    centre = Running(env_c, ["--no-demo"])
    branch = None
    try:
        centre.wait_for("Press Ctrl-C to stop.", START_TIMEOUT)
        wait_healthy(f"http://127.0.0.1:{port_c}", centre)
        key_c, key_b = tarifa(env_c, "key")["keys"][0], tarifa(env_b, "key")["keys"][0]
        tarifa(env_c, "add-node", "--code", "B1", "--name", "Branch 1", "--url", f"http://127.0.0.1:{port_b}",
               "--key-id", key_b["key_id"], "--public-key", key_b["public_key"])
        tarifa(env_b, "add-node", "--code", "C", "--name", "Centre", "--role", "centre",
               "--url", f"http://127.0.0.1:{port_c}", "--key-id", key_c["key_id"], "--public-key", key_c["public_key"])

        (tmp_path / "catalog.json").write_text(json.dumps(CATALOG))
        done = run(env_c, "catalog", "import", str(tmp_path / "catalog.json"))
        assert done.returncode == 0, done.stdout + done.stderr
        first = tarifa(env_c, "publish-release", "--note", "first")
        assert first["number"] == 1 and first["counts"]["catalog.Tariff"] == 1

        pulled = tarifa(env_b, "pull-releases")
        assert pulled["in_force"] == 1 and [r["status"] for r in pulled["releases"]] == ["applied"]
        assert branch_tariffs(db_b) == [("fast", "Fast", "C", True)]
        assert query(db_b, "SELECT recurring_fee FROM catalog_priceversion")[0][0] == 25

        # A local edit of centrally owned data is refused at the branch, and nothing of it is written.
        local = dict(CATALOG, tariffs=[dict(CATALOG["tariffs"][0], name="Local name")])
        (tmp_path / "local.json").write_text(json.dumps(local))
        refused = run(env_b, "catalog", "import", str(tmp_path / "local.json"))
        assert refused.returncode != 0 and "owned by the centre" in (refused.stdout + refused.stderr)
        assert branch_tariffs(db_b) == [("fast", "Fast", "C", True)]

        # Release 2 is published while the branch's server is down; its worker pulls it once it runs.
        second = dict(CATALOG, tariffs=[dict(CATALOG["tariffs"][0], name="Fast 2")])
        (tmp_path / "second.json").write_text(json.dumps(second))
        assert run(env_c, "catalog", "import", str(tmp_path / "second.json")).returncode == 0
        assert tarifa(env_c, "publish-release")["number"] == 2
        branch = Running(env_b, ["--no-demo"])
        branch.wait_for("Press Ctrl-C to stop.", START_TIMEOUT)
        wait_until(lambda: query(db_b, "SELECT max(number) FROM releases_release WHERE applied_at IS NOT NULL")
                   == [(2,)], "release 2 applied by the branch's periodic pull", timeout=180, interval=1,
                   nodes=(centre, branch))
        assert branch_tariffs(db_b) == [("fast", "Fast 2", "C", True)]
        status = run(env_b, "federation", "status")
        assert status.returncode == 0, status.stdout + status.stderr
        release = json.loads(status.stdout)["release"]
        assert release["number"] == 2 and release["refused"] == []
        centre_status = json.loads(run(env_c, "federation", "status").stdout)["release"]
        assert centre_status["content_hash"] == release["content_hash"]  # the same release on both
    finally:
        for node in (centre, branch):
            if node is not None:
                if node.process.poll() is None:
                    node.stop()
                node.kill()
