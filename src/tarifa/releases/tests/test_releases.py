"""Reference releases on one database: the centre publishes (snapshot, hash, signature), a branch applies the
centre's signed bundle in one transaction; tampered and newer-format releases are refused with the branch
unchanged; a branch refuses local edits of centrally owned data, the centre and a standalone node do not.

One database plays both nodes: the settings say which node speaks (`as_centre`, `as_branch`); before a
"branch" applies, the centre's own release rows are removed (they would be the branch's in its database)
and the reference data is changed the way a branch's could differ."""

import base64
import json
from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.test import override_settings

from tarifa.catalog import services as catalog
from tarifa.catalog.models import PriceVersion, ServiceType, Tariff
from tarifa.federation import selectors as federation
from tarifa.federation import services as federation_services
from tarifa.federation import signatures
from tarifa.federation.models import Node
from tarifa.kernel.errors import DomainError
from tarifa.kernel.ownership import OwnedByCentre
from tarifa.rating import services as rating
from tarifa.rating.models import DestinationPrefix, RatingTenant
from tarifa.releases import content, selectors, services
from tarifa.releases.models import NumberRange, Release, ReleaseRefusal

pytestmark = pytest.mark.django_db


@contextmanager
def as_centre():
    with override_settings(TARIFA_NODE_ROLE="centre", TARIFA_NODE_CODE="C"):
        yield


@contextmanager
def as_branch():
    with override_settings(TARIFA_NODE_ROLE="branch", TARIFA_NODE_CODE="B1"):
        yield


@pytest.fixture
def centre():
    """The centre's node row with its own key (a branch's registry holds exactly this)."""
    with as_centre():
        key = federation_services.own_signing_key()
        node = federation_services.create_node(actor="test", code="C", name="Centre", role="centre",
                                               base_url="https://c.example.net")
        federation_services.add_node_key(node, actor="test", key_id=key.key_id, public_key=key.public_key)
    return node


@pytest.fixture
def reference():
    with as_centre():
        internet = catalog.create_service_type(actor="test", code="inet", name="Internet", category="internet")
        service = catalog.create_service(actor="test", code="home", name="Home internet", service_type=internet)
        catalog.create_tax(actor="test", code="vat", name="VAT", rate=Decimal("20"), service_types=[internet])
        catalog.create_tariff(actor="test", code="fast", name="Fast", service=service, recurring_fee=Decimal("25"),
                              one_time_fees={"activation": Decimal("10")})
        catalog.create_tariff(actor="test", code="slow", name="Slow", service=service, recurring_fee=Decimal("9.5"))
        tenant = rating.create_tenant(actor="test", code="op.example")
        rating.create_destination(actor="test", tenant=tenant, code="MOBILE", prefixes=["3579", "3578"])
        rating.create_rate(actor="test", tenant=tenant, code="R1", price="0.10", rate_unit="60s",
                           rate_increment="1s")
        services.create_number_range(actor="test", kind="phone_number", first="700000000", last="700009999",
                                     assigned_branch="B1")


def publish(**kw):
    with as_centre():
        return services.publish(actor="test", **kw)


def become_branch_database():
    """The centre's release rows are not in a branch's database."""
    Release.objects.all().delete()


def tables() -> bytes:
    return content.canonical(content.snapshot())


def resign(bundle: dict, **changes) -> dict:
    """The bundle with `changes` to its header, signed again with the centre's key (a well-signed release)."""
    with as_centre():
        key = federation_services.own_signing_key()
    head = {k: bundle[k] for k in ("number", "format", "effective_date", "centre", "published_at", "content_hash",
                                   "key_id")}
    head.update(changes)
    private = signatures.private_from_text(key.private_key)
    return {**bundle, **head, "signature": base64.b64encode(private.sign(content.canonical(head))).decode()}


def test_a_published_release_is_numbered_hashed_signed_and_holds_the_reference_data_by_natural_keys(centre, reference):
    release = publish(note="first")
    assert release.number == 1 and release.format_version == content.FORMAT
    assert release.content_hash == content.digest(release.content.encode())
    body = json.loads(release.content)
    tariffs = next(p["rows"] for p in body["parts"] if p["model"] == "catalog.Tariff")
    assert [t["code"] for t in tariffs] == ["fast", "slow"] and tariffs[0]["service"] == ["home"]
    versions = next(p["rows"] for p in body["parts"] if p["model"] == "catalog.PriceVersion")
    assert {(v["tariff"][0], v["recurring_fee"]) for v in versions} == {("fast", "25.000000"), ("slow", "9.500000")}
    assert str(Tariff.objects.get(code="fast").pk) not in release.content  # no centre UUIDs
    assert release.counts["releases.NumberRange"] == 1
    with pytest.raises(DomainError) as refused:
        publish()
    assert refused.value.code == "nothing_changed"
    with as_centre():
        catalog.update_tariff(Tariff.objects.get(code="slow"), actor="test", name="Slow plus")
    second = publish()
    assert second.number == 2
    assert second.changes["catalog.Tariff"]["changed"] == 1 and second.changes["catalog.Tariff"]["changed_keys"] == [
        ["slow"]]
    with as_branch(), pytest.raises(DomainError) as not_centre:
        services.publish(actor="test")
    assert not_centre.value.code == "not_the_centre"


def test_a_branch_applies_the_centres_release_in_one_transaction_and_ends_with_exactly_its_content(centre, reference):
    bundle = services.bundle(publish())
    published = bundle["content"].encode()
    become_branch_database()
    # The branch's copy differs: a renamed tariff, a lost prefix, an archived service type, a local tariff.
    with as_centre():
        catalog.update_tariff(Tariff.objects.get(code="fast"), actor="test", name="Renamed")
        DestinationPrefix.objects.filter(prefix="3579").delete()
        local = catalog.create_tariff(actor="test", code="local", name="Local", service=Tariff.objects.get(
            code="fast").service, recurring_fee=Decimal("1"))
    ServiceType.objects.filter(code="inet").update(archived_at="2026-01-01T00:00:00Z")
    plan_version = RatingTenant.objects.get().plan_version
    assert tables() != published

    with as_branch():
        result = services.receive(bundle)
        assert result["status"] == "applied", result
        assert tables() == published  # exactly the release, by natural keys
        assert selectors.in_force_number() == 1
        release = selectors.in_force()
        assert release.applied_at is not None and release.origin == "received"
        assert services.receive(bundle)["status"] == "duplicate"
    local.refresh_from_db()
    assert local.archived_at is not None  # not in the release: archived, not deleted
    assert not PriceVersion.objects.filter(tariff=local).exists()  # its unreferenced price version removed
    assert Tariff.objects.get(code="fast").name == "Fast"
    assert set(Tariff.objects.filter(archived_at__isnull=True).values_list("branch", flat=True)) == {"C"}
    assert ServiceType.objects.get(code="inet").archived_at is None
    assert RatingTenant.objects.get().plan_version > plan_version  # the rating engine reloads the plan
    assert NumberRange.objects.get().assigned_branch == "B1"


def test_a_branch_that_was_down_catches_up_in_order_and_a_gap_is_refused(centre, reference):
    bundles = [services.bundle(publish())]
    for name in ("two", "three"):
        with as_centre():
            catalog.update_tariff(Tariff.objects.get(code="slow"), actor="test", name=name)
        bundles.append(services.bundle(publish()))
    final = tables()
    become_branch_database()
    with as_branch():
        assert services.receive(bundles[0])["status"] == "applied"
        gap = services.receive(bundles[2])
        assert gap["status"] == "refused" and gap["code"] == "gap"
        assert selectors.in_force_number() == 1
        assert [services.receive(b)["status"] for b in bundles[1:]] == ["applied", "applied"]
        assert selectors.in_force_number() == 3 and tables() == final
        assert not selectors.open_refusals().exists()  # the gap resolved once release 2 and 3 applied


def test_a_tampered_release_is_refused_and_the_branch_is_unchanged(centre, reference):
    bundle = services.bundle(publish())
    become_branch_database()
    before = tables()
    cases = {
        "bad_hash": {**bundle, "content": bundle["content"].replace('"25.000000"', '"2.000000"')},
        "bad_signature": {**bundle, "effective_date": "2030-01-01"},
    }
    other = signatures.generate_private_key()
    stranger = Node.objects.create(code="X", name="Stranger", role="branch", base_url="https://x.example.net")
    stranger.keys.create(key_id="X.1", public_key=signatures.public_to_text(other.public_key()))
    head = {k: bundle[k] for k in ("number", "format", "effective_date", "centre", "published_at", "content_hash")}
    head["key_id"] = "X.1"
    cases["not_the_centre"] = {**bundle, **head,
                               "signature": base64.b64encode(other.sign(content.canonical(head))).decode()}
    with as_branch():
        for code, tampered in cases.items():
            result = services.receive(tampered)
            assert (result["status"], result["code"]) == ("refused", code)
            assert tables() == before and selectors.in_force_number() == 0
        assert {r.code for r in ReleaseRefusal.objects.all()} == set(cases)
        assert {p["code"] for p in federation.problems()} == {"release_refused"}


def test_a_release_in_a_newer_format_is_refused_cleanly_reported_and_the_branch_keeps_its_last(centre, reference):
    first = services.bundle(publish())
    with as_centre():
        catalog.update_tariff(Tariff.objects.get(code="slow"), actor="test", name="Newer")
    second = services.bundle(publish())
    become_branch_database()
    with as_branch():
        assert services.receive(first)["status"] == "applied"
        kept = tables()
        newer = resign(second, format=content.FORMAT + 1)
        for _ in range(2):  # pulled again: still refused, reported once
            result = services.receive(newer)
            assert (result["status"], result["code"]) == ("refused", "format_too_new")
        assert tables() == kept and selectors.in_force_number() == 1
        refusals = list(selectors.open_refusals())
        assert [(r.number, r.code) for r in refusals] == [(2, "format_too_new")]
        status = selectors.status()
        assert status["number"] == 1 and status["refused"][0]["code"] == "format_too_new"
        problem = [p for p in federation.problems() if p["code"] == "release_refused"]
        assert problem and "format_too_new" in problem[0]["message"]
        assert services.receive(second)["status"] == "applied"  # the upgraded node reads it
        assert not selectors.open_refusals().exists()


def test_local_edits_of_centrally_owned_data_are_refused_on_a_branch_and_allowed_on_the_centre_and_standalone(
        reference):
    tariff = Tariff.objects.get(code="fast")
    with as_branch():
        for attempt in (
            lambda: catalog.update_tariff(tariff, actor="test", name="Local"),
            lambda: catalog.create_service_type(actor="test", code="tv", name="TV"),
            lambda: catalog.archive(tariff, actor="test"),
            lambda: rating.upload_prefixes(actor="test", tenant=RatingTenant.objects.get(),
                                           rows=[{"destination": "MOBILE", "prefix": "3570"}]),
            lambda: services.create_number_range(actor="test", kind="login", first="a", last="b",
                                                 assigned_branch="B1"),
        ):
            with pytest.raises(OwnedByCentre) as refused:
                attempt()
            assert refused.value.code == "owned_by_centre" and "centre" in refused.value.message
    assert Tariff.objects.get(code="fast").name == "Fast" and not ServiceType.objects.filter(code="tv").exists()
    assert not DestinationPrefix.objects.filter(prefix="3570").exists()
    with as_centre():
        assert catalog.update_tariff(tariff, actor="test", name="Centre's").name == "Centre's"
    with override_settings(TARIFA_NODE_ROLE="standalone"):
        assert catalog.update_tariff(tariff, actor="test", name="Standalone").name == "Standalone"


def test_the_branch_screens_hide_edit_actions_and_show_the_release_in_force(admin_user, client, centre, reference):
    client.force_login(admin_user)
    tariff = Tariff.objects.get(code="fast")
    bundle = services.bundle(publish())
    become_branch_database()
    with as_branch():
        services.receive(bundle)
        page = client.get(f"/catalog/tariff/{tariff.pk}/").content.decode()
        assert 'data-testid="owned-by-centre"' in page and 'data-action="edit"' not in page
        listing = client.get("/catalog/tariff/").content.decode()
        assert 'data-testid="add"' not in listing
        overview = client.get("/releases/").content.decode()
        assert 'data-testid="release-number">1<' in overview
        assert client.get("/api/v1/releases/status/").json()["number"] == 1
    with as_centre():
        page = client.get(f"/catalog/tariff/{tariff.pk}/").content.decode()
        assert 'data-action="edit"' in page and 'owned-by-centre' not in page


def test_the_centre_serves_releases_after_n_to_registered_nodes_only(client, centre, reference):
    publish()
    with as_centre():
        catalog.update_tariff(Tariff.objects.get(code="slow"), actor="test", name="Second")
    publish()
    branch_key = signatures.generate_private_key()
    node = Node.objects.create(code="B1", name="Branch", role="branch", base_url="https://b1.example.net")
    node.keys.create(key_id="B1.1", public_key=signatures.public_to_text(branch_key.public_key()),
                     valid_from="2020-01-01T00:00:00Z")

    def get(after, key_id="B1.1", key=branch_key):
        headers = signatures.sign_request(method="GET", path="/federation/v1/releases", body=b"", key_id=key_id,
                                          private_key=key)
        return client.get(f"/federation/v1/releases?after={after}",
                          headers={k: v for k, v in headers.items()})

    with as_centre():
        answer = get(1)
        assert answer.status_code == 200, answer.content
        assert [r["number"] for r in answer.json()["releases"]] == [2] and answer.json()["latest"] == 2
        assert [r["number"] for r in get(0).json()["releases"]] == [1, 2]
        assert client.get("/federation/v1/releases?after=0").status_code == 401
        assert get(0, key_id="Z.1", key=signatures.generate_private_key()).status_code == 401
    with as_branch():
        assert get(0).status_code == 404


def test_publish_and_status_through_the_api(api, admin_user, centre, reference):
    client = api(admin_user)
    with as_centre():
        preview = client.get("/api/v1/releases/preview/").json()
        assert preview["next_number"] == 1 and preview["changes"]["catalog.Tariff"]["added"] == 2
        assert client.post("/api/v1/releases/publish/", {"confirm": False}, format="json").status_code == 400
        done = client.post("/api/v1/releases/publish/", {"confirm": True, "note": "api"}, format="json")
        assert done.status_code == 201 and done.json()["number"] == 1
        assert client.get("/api/v1/releases/status/").json()["number"] == 1
        again = client.post("/api/v1/releases/publish/", {"confirm": True}, format="json")
        assert again.status_code == 409 and again.json()["error"]["code"] == "nothing_changed"


def test_demo_data_loads_on_a_branch_and_the_first_release_takes_it_over(centre, reference):
    from tarifa.kernel import ownership

    bundle = services.bundle(publish())
    become_branch_database()
    with as_branch():
        with ownership.demo_loading():  # what web/demo_loader does around every app's demo
            catalog.create_service_type(actor="demo", code="tv", name="TV")
        with pytest.raises(OwnedByCentre):
            catalog.create_service_type(actor="test", code="radio", name="Radio")
        assert services.receive(bundle)["status"] == "applied"
    assert ServiceType.objects.get(code="tv").archived_at is not None  # not in the centre's release


def test_the_whole_demo_reference_data_round_trips_through_a_release():
    """Every declared part populated (the demo data), published, applied on a branch copy: the same tables."""
    import datetime as dt

    from tarifa.web.demo_loader import load_demo

    load_demo(actor="demo")  # a standalone node: the demo publishes release 1
    bundle = services.bundle(Release.objects.get())
    assert all(n > 0 for n in json.loads(json.dumps(Release.objects.get().counts)).values())
    become_branch_database()
    for node in Node.objects.filter(role="centre"):  # the demo's made-up centre: not this one
        federation_services.archive_node(node, actor="test")
    key = federation_services.own_signing_key()
    node = federation_services.create_node(actor="test", code=bundle["centre"], name="Centre", role="centre",
                                           base_url="https://c.example.net")
    federation_services.add_node_key(node, actor="test", key_id=key.key_id, public_key=key.public_key,
                                     valid_from=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    with override_settings(TARIFA_NODE_ROLE="branch"):
        assert services.receive(bundle)["status"] == "applied"
        assert tables() == bundle["content"].encode()
