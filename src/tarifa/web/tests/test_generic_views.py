"""The generic screens (list, detail, create/edit, import, actions), exercised on the staff users.

This module stays in the `web` layer: users come from the fixtures and records are
reached through `get_user_model()` and URLs, not by importing identity.
"""

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

pytestmark = pytest.mark.django_db

LIST = "/identity/user/"
ADD = "/identity/user/add/"
IMPORT = "/identity/user/import/"


@pytest.fixture
def admin_user(make_user):
    """A superuser without a password: nobody logs in with one here, and each Argon2 hash
    costs up to a second on a busy machine."""
    return make_user(username="admin", superuser=True, password=None)


@pytest.fixture
def admin(admin_user, client):
    client.force_login(admin_user)
    return client


@pytest.fixture
def staff(make_user):
    """Sixty users: user-00 … user-59, every third one inactive, all named Smith or Jones."""
    users = []
    for i in range(60):
        u = make_user(username=f"user-{i:02d}", password=None)
        users.append(u)
    model = get_user_model()
    model.objects.filter(username__in=[f"user-{i:02d}" for i in range(0, 60, 3)]).update(is_active=False)
    for i, u in enumerate(users):
        model.objects.filter(pk=u.pk).update(last_name="Smith" if i % 2 else "Jones", email=f"u{i}@example.com")
    return users


def usernames(response):
    return [obj.username for obj, _cells in response.context["rows"]]


def test_the_list_paginates_and_says_how_many(admin, staff):
    first = admin.get(LIST)
    assert first.status_code == 200
    page = first.context["page"]
    assert page.paginator.count == 61  # the sixty and the admin
    assert len(usernames(first)) == 50
    assert "Page 1 of 2 · 61 records" in first.content.decode()

    second = admin.get(LIST, {"page": 2})
    assert len(usernames(second)) == 11

    small = admin.get(LIST, {"per_page": 25, "page": 3})
    assert len(usernames(small)) == 11
    assert admin.get(LIST, {"per_page": 7}).context["per_page"] == 50  # only the offered sizes
    assert admin.get(LIST, {"page": "999"}).context["page"].number == 2
    assert admin.get(LIST, {"page": "x"}).status_code == 200


def test_the_list_filters_searches_and_sorts(admin, staff):
    inactive = admin.get(LIST, {"is_active": "false"})
    assert sorted(usernames(inactive)) == [f"user-{i:02d}" for i in range(0, 60, 3)]

    found = admin.get(LIST, {"q": "user-1"})
    assert sorted(usernames(found)) == [f"user-1{i}" for i in range(10)]
    assert usernames(admin.get(LIST, {"q": "U59@EXAMPLE"})) == ["user-59"]
    assert usernames(admin.get(LIST, {"q": "nobody-at-all"})) == []

    by_name_desc = usernames(admin.get(LIST, {"sort": "-username"}))
    assert by_name_desc[:2] == ["user-59", "user-58"]
    by_last_name = usernames(admin.get(LIST, {"sort": "last_name", "per_page": 100}))
    assert by_last_name.index("user-00") < by_last_name.index("user-01")  # Jones before Smith
    # Unknown sort keys are ignored, not a server error.
    assert admin.get(LIST, {"sort": "password"}).status_code == 200

    combined = admin.get(LIST, {"is_active": "true", "q": "Jones", "sort": "-username"})
    assert usernames(combined)[0] == "user-58"
    assert all(name not in usernames(combined) for name in ["user-00", "user-01"])


def test_htmx_search_returns_only_the_table(admin, staff):
    response = admin.get(LIST, {"q": "user-5"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="object-table")

    html = response.content.decode()
    assert response.status_code == 200
    assert "<table" in html and "<html" not in html
    assert "user-55" in html and "user-45" not in html


def test_csv_export_follows_the_filters(admin, staff):
    response = admin.get(LIST, {"is_active": "false", "sort": "username", "export": "csv"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["id", "Username", "First name", "Last name", "Email address", "Active", "Last login"]
    assert [r[1] for r in rows[1:]] == [f"user-{i:02d}" for i in range(0, 60, 3)]
    assert {r[5] for r in rows[1:]} == {"No"}  # CSV exports are read by people: Yes/No (issue 10)


def test_create_shows_server_side_errors_next_to_the_fields(admin, make_user):
    make_user(username="ivan", password=None)
    model = get_user_model()

    duplicate = admin.post(ADD, {"username": "IVAN", "email": "i@example.com"})
    assert duplicate.status_code == 200
    assert duplicate.context["form"].errors["username"] == ["A user with this name already exists."]
    assert "A user with this name already exists." in duplicate.content.decode()

    weak = admin.post(ADD, {"username": "olga", "password": "12345678"})
    assert weak.status_code == 200
    assert "password" in weak.context["form"].errors
    assert "too short" in " ".join(weak.context["form"].errors["password"])

    bad_email = admin.post(ADD, {"username": "petr", "email": "not-an-email"})
    assert "email" in bad_email.context["form"].errors
    assert not model.objects.filter(username__in=["olga", "petr"]).exists()
    assert model.objects.filter(username__iexact="ivan").count() == 1


def test_create_then_edit(admin):
    model = get_user_model()

    created = admin.post(ADD, {"username": "olga", "first_name": "Olga", "password": "Corr3ct-horse-battery"})

    olga = model.objects.get(username="olga")
    assert created.status_code == 302 and created["Location"] == f"/identity/user/{olga.pk}/"
    assert olga.check_password("Corr3ct-horse-battery")

    edit_url = f"/identity/user/{olga.pk}/edit/"
    form = admin.get(edit_url).context["form"]
    assert form.initial["first_name"] == "Olga" and "password" not in form.fields
    # The username cannot be changed; a posted one is ignored.
    edited = admin.post(edit_url, {"username": "hacker", "first_name": "Olga", "last_name": "Petrova",
                                   "email": "olga@example.com"})
    assert edited.status_code == 302
    olga.refresh_from_db()
    assert (olga.username, olga.last_name, olga.email) == ("olga", "Petrova", "olga@example.com")

    refused = admin.post(edit_url, {"first_name": "Olga", "email": "broken"})
    assert refused.status_code == 200 and "email" in refused.context["form"].errors


def test_an_unknown_record_is_404(admin):
    assert admin.get("/identity/user/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert admin.get("/identity/user/00000000-0000-0000-0000-000000000000/edit/").status_code == 404


def upload(content: bytes, name="users.csv"):
    return SimpleUploadedFile(name, content, content_type="text/csv")


def test_import_creates_every_row(admin):
    content = b"username,first_name,last_name,email\nivan,Ivan,Petrov,ivan@example.com\nolga,Olga,,\n"

    response = admin.post(IMPORT, {"file": upload(content)})

    assert response.status_code == 302 and response["Location"] == LIST
    assert set(get_user_model().objects.filter(username__in=["ivan", "olga"]).values_list("last_name", flat=True)) \
        == {"Petrov", ""}


@pytest.mark.parametrize("content, message", [
    ("username,email\nivan,ivan@example.com\nolga,not-an-email\n", "Row 3, email: Enter a valid email address."),
    ("username,email\nivan,\nIVAN,\n", "Row 3: User 'IVAN' already exists."),
    ("username,email\nivan,\nbad name!,\n", "Row 3, username: Enter a valid username."),
    ("username,email\nivan,\nolga\n", "Row 3: expected 2 columns, found 1."),
])
def test_one_bad_row_reports_its_row_and_writes_nothing(admin, content, message):
    response = admin.post(IMPORT, {"file": upload(content.encode())})

    assert response.status_code == 400
    assert any(e.startswith(message) for e in response.context["errors"]), response.context["errors"]
    assert 'data-testid="import-errors"' in response.content.decode()
    assert not get_user_model().objects.filter(username__in=["ivan", "IVAN", "olga"]).exists()


@pytest.mark.parametrize("content, message", [
    ("username,email\nivan,\n".encode("utf-16"), "The file is not UTF-8 text"),
    ("username,email\nJürgen,\n".encode("latin-1"), "The file is not UTF-8 text (byte 16)."),
    (b"", None),  # an empty upload is refused by the form field itself
    (b"username,email\n", "The file has a header but no rows."),
    (b"username,password\nivan,secret\n", "Unknown columns: password."),
])
def test_unreadable_files_are_refused_with_a_clear_error(admin, content, message):
    response = admin.post(IMPORT, {"file": upload(content)})

    assert response.status_code == 400
    if message:
        assert any(e.startswith(message) for e in response.context["errors"]), response.context["errors"]
    else:
        assert "file" in response.context["form"].errors
    assert not get_user_model().objects.filter(username="ivan").exists()


def test_a_utf8_file_with_a_byte_order_mark_is_read(admin):
    response = admin.post(IMPORT, {"file": upload("username,first_name\njurgen,Jürgen\n".encode("utf-8-sig"))})

    assert response.status_code == 302
    assert get_user_model().objects.get(username="jurgen").first_name == "Jürgen"


def test_an_oversized_upload_is_refused(admin, settings):
    settings.TARIFA_MAX_UPLOAD_BYTES = 1000
    content = b"username,email\n" + b"".join(f"user{i},\n".encode() for i in range(200))

    response = admin.post(IMPORT, {"file": upload(content)})

    assert response.status_code == 400
    assert response.context["form"].errors["file"] == [
        f"The file is too large ({len(content)} bytes; at most 1000)."]
    assert not get_user_model().objects.filter(username="user1").exists()


def test_the_list_offers_add_and_import_only_with_add_permission(client, make_user):
    client.force_login(make_user("identity.view_user", username="viewer", password=None))
    html = client.get(LIST).content.decode()
    assert 'data-testid="add"' not in html and IMPORT not in html
    assert client.get(IMPORT).status_code == 403
    assert client.post(IMPORT, {"file": upload(b"username\nivan\n")}).status_code == 403
    assert not get_user_model().objects.filter(username="ivan").exists()

    client.force_login(make_user("identity.view_user", "identity.add_user", username="clerk", password=None))
    html = client.get(LIST).content.decode()
    assert 'data-testid="add"' in html and IMPORT in html


def test_an_action_that_is_not_available_is_refused_even_by_direct_url(admin, make_user):
    ivan = make_user(username="ivan", password=None)
    detail = f"/identity/user/{ivan.pk}/"
    assert 'data-action="reactivate"' not in admin.get(detail).content.decode()

    response = admin.post(reverse("identity:user_action", args=[ivan.pk, "reactivate"]))

    assert response.status_code == 302 and response["Location"] == detail
    assert "Reactivate is not possible for ivan now." in admin.get(detail).content.decode()
    assert admin.get(reverse("identity:user_action", args=[ivan.pk, "reactivate"])).status_code == 302


def test_navigation_shows_only_permitted_entries_with_their_names(client, make_user):
    client.force_login(make_user("identity.view_user", "identity.view_apitoken", username="viewer", password=None))

    nav = dict(entry for group in client.get(LIST).context["nav_groups"] for _section, entries in group["sections"]
               for entry in entries)

    assert set(nav) == {"Users", "API tokens"}
    assert nav["Users"] == LIST
