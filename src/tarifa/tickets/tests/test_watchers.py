"""Watchers: anyone who may see a ticket may watch it (API, ticket page), the watched-by-me
filter, audit, and watchers e-mailed when the ticket moves or is commented on by someone else."""

import pytest

from tarifa.audit.models import AuditEvent
from tarifa.kernel.errors import DomainError
from tarifa.subscriptions.tests.helpers import run_events
from tarifa.tickets import services

from .helpers import ACTOR, open_activation, world

pytestmark = pytest.mark.django_db

PERMS = ("tickets.view_ticket", "tickets.advance_ticket", "tickets.view_comment", "tickets.add_comment",
         "crm.view_customer")


def _person(make_user, username, *perms):
    user = make_user(*(perms or PERMS), username=username)
    user.email = f"{username}@operator.example"
    user.save(update_fields=["email"])
    return user


def _audit(ticket, action):
    return list(AuditEvent.objects.filter(object_id=str(ticket.pk), action=action).values_list("message", flat=True))


def test_a_user_watches_and_unwatches_a_ticket_through_the_api_and_filters_by_it(api, make_user):
    tariffs, account, tt, steps = world()
    alice = _person(make_user, "alice")
    watched = open_activation(tt, account, tariffs["NET-31"], title="watched")
    other = open_activation(tt, account, tariffs["NET-62"], title="other")
    client = api(alice)
    url = f"/api/v1/tickets/{watched.pk}/"
    assert client.get(url).json()["watchers"] == [] and client.get(url).json()["watching"] is False
    r = client.post(url + "watch/")
    assert r.status_code == 200, r.json()
    assert r.json()["watchers"] == ["alice"] and r.json()["watching"] is True
    assert client.post(url + "watch/").status_code == 200  # again: no change, nothing more recorded
    assert list(watched.watchers.all()) == [alice]
    assert _audit(watched, "watch") == ["alice"]
    listed = lambda **q: {t["number"] for t in client.get("/api/v1/tickets/", q).json()["results"]}  # noqa: E731
    assert listed(watched="true") == {watched.number}
    assert listed(watched="false") == {other.number}
    assert listed() == {watched.number, other.number}
    # Someone else sees who watches, but is not watching.
    bob_view = api(_person(make_user, "bob")).get(url).json()
    assert bob_view["watchers"] == ["alice"] and bob_view["watching"] is False
    r = client.post(url + "unwatch/")
    assert r.status_code == 200 and r.json()["watchers"] == [] and r.json()["watching"] is False
    assert _audit(watched, "unwatch") == ["alice"]
    assert listed(watched="true") == set()


def test_only_who_may_see_a_ticket_may_watch_it(api, make_user):
    from tarifa.identity import services as identity

    techs = identity.create_role(actor=ACTOR, name="Techs")
    tariffs, account, tt, steps = world(install_roles=[techs])
    clerk = _person(make_user, "clerk")
    at_install = open_activation(tt, account, tariffs["NET-31"])
    services.advance(at_install, actor=ACTOR, from_step="new", to_step="install")
    # The clerk does not work "install": the ticket is not theirs to see, nor to watch.
    r = api(clerk).post(f"/api/v1/tickets/{at_install.pk}/watch/")
    assert r.status_code == 404
    with pytest.raises(DomainError) as exc:
        services.watch(at_install, actor=clerk)
    assert exc.value.code == "permission_denied"
    # Nor may anyone make them a watcher of it.
    with pytest.raises(DomainError) as exc:
        services.watch(at_install, actor=ACTOR, user=clerk)
    assert exc.value.code == "cannot_view"
    # Without tickets.view_ticket: refused by the API's permission.
    r = api(make_user("crm.view_customer", username="outsider")).post(f"/api/v1/tickets/{at_install.pk}/watch/")
    assert r.status_code == 403
    # Adding someone else needs tickets.change_ticket.
    tech = _person(make_user, "tech")
    tech.roles.add(techs)
    other_tech = _person(make_user, "tech2")
    other_tech.roles.add(techs)
    with pytest.raises(DomainError) as exc:
        services.watch(at_install, actor=tech, user=other_tech)
    assert exc.value.code == "permission_denied"
    assert not at_install.watchers.exists()


def test_watchers_are_emailed_when_the_ticket_moves_or_is_commented_on_but_not_the_one_who_did_it(
        api, make_user, mailoutbox):
    tariffs, account, tt, steps = world()
    alice = _person(make_user, "alice")
    bob = _person(make_user, "bob")
    no_comments = _person(make_user, "carol", "tickets.view_ticket")  # may not read comments
    ticket = open_activation(tt, account, tariffs["NET-31"])
    for user in (alice, bob, no_comments):
        services.watch(ticket, actor=user)

    api(alice).post(f"/api/v1/tickets/{ticket.pk}/advance/", {"from": "new", "to": "install"}, format="json")
    run_events()
    assert sorted(m.to[0] for m in mailoutbox) == ["bob@operator.example", "carol@operator.example"]
    mail = mailoutbox[0]
    assert mail.subject == f"Ticket {ticket.number} is now at “Installation”"
    assert "from “New” to “Installation”" in mail.body and "alice" in mail.body

    mailoutbox.clear()
    r = api(bob).post(f"/api/v1/tickets/{ticket.pk}/comments/", {"text": "Router ordered."}, format="json")
    assert r.status_code == 201
    run_events()
    [mail] = mailoutbox  # alice; not bob who wrote it, nor carol who may not read comments
    assert mail.to == ["alice@operator.example"] and "Router ordered." in mail.body
    assert mail.subject == f"Ticket {ticket.number}: a comment from bob"

    mailoutbox.clear()
    services.watch(ticket, actor=bob, watching=False)
    services.advance(ticket, actor=alice, from_step="install", to_step="active", data={"login": "jdoe"})
    run_events()
    assert sorted(m.to[0] for m in mailoutbox) == ["carol@operator.example"]
    assert "The ticket is closed." in mailoutbox[0].body
    run_events()  # handled once
    assert len(mailoutbox) == 1


def test_no_one_to_tell_no_mail(api, make_user, mailoutbox):
    tariffs, account, tt, steps = world()
    alice = _person(make_user, "alice")
    ticket = open_activation(tt, account, tariffs["NET-31"])
    services.watch(ticket, actor=alice)
    services.advance(ticket, actor=alice, from_step="new", to_step="install")  # the only watcher did it
    services.add_comment(ticket=ticket, actor=alice, text="Mine.")
    run_events()
    assert mailoutbox == []


def test_the_ticket_page_watches_lists_watchers_and_filters_watched_by_me(make_user, staff_client):
    tariffs, account, tt, steps = world()
    alice = _person(make_user, "alice")
    watched = open_activation(tt, account, tariffs["NET-31"], title="watched one")
    other = open_activation(tt, account, tariffs["NET-62"], title="other one")
    ui = staff_client(alice)
    page = ui.get(f"/tickets/ticket/{watched.pk}/").content.decode()
    assert 'data-action="watch"' in page and "Nobody watches this ticket." in page
    r = ui.post(f"/tickets/ticket/{watched.pk}/watch/", {"watching": "1"})
    assert r.status_code == 302
    page = ui.get(f"/tickets/ticket/{watched.pk}/").content.decode()
    assert 'data-action="unwatch"' in page and 'data-watcher="alice"' in page
    assert list(watched.watchers.all()) == [alice] and _audit(watched, "watch") == ["alice"]
    listing = ui.get("/tickets/ticket/", {"watched": "true"}).content.decode()
    assert watched.number in listing and other.number not in listing
    assert ui.post(f"/tickets/ticket/{watched.pk}/watch/", {"watching": "0"}).status_code == 302
    assert not watched.watchers.exists() and _audit(watched, "unwatch") == ["alice"]
    page = ui.get(f"/tickets/ticket/{watched.pk}/").content.decode()
    assert 'data-action="watch"' in page
