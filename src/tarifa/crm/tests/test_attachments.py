"""Attachments: allowed types stored and downloadable with permission; the rest refused, nothing written."""

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from tarifa.crm import services
from tarifa.crm.files import sniff
from tarifa.crm.models import Attachment
from tarifa.kernel.errors import DomainError

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.7\n1 0 obj << >> endobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 20
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 20
TIFF = b"II*\x00\x08\x00\x00\x00" + b"\x00" * 20
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 40


def stored_files(media_root):
    return [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else []


@pytest.mark.parametrize("content, name, ctype", [
    (PDF, "contract.pdf", "application/pdf"), (PNG, "scan.PNG", "image/png"), (JPEG, "photo.jpeg", "image/jpeg"),
    (TIFF, "fax.tif", "image/tiff"), ("Zahlungsbestätigung\n".encode(), "note.txt", "text/plain"),
    (PDF, "no-extension", "application/pdf"),
])
def test_sniff_by_content(content, name, ctype):
    assert sniff([content]).content_type == ctype


def test_sniff_refuses_binary_and_broken_utf8():
    assert sniff([EXE]).content_type is None
    assert sniff([b"hello \xff world"]).content_type is None
    assert sniff([b"text with a \x00 NUL"]).content_type is None
    # A multi-byte character split across chunks is still text.
    word = "Grüße\n".encode()
    assert sniff([word[:3], word[3:]]).content_type == "text/plain"


def test_allowed_file_is_stored_with_its_checksum(person, media_root):
    attachment = services.attach_file(person, actor="test", file=ContentFile(PDF, name="../../etc/contract.pdf"),
                                      description="Signed form")
    assert attachment.filename == "contract.pdf"
    assert attachment.content_type == "application/pdf"
    assert attachment.size == len(PDF)
    files = stored_files(media_root)
    assert len(files) == 1 and files[0].read_bytes() == PDF
    assert "contract" not in files[0].name  # stored under its id, never the uploader's name
    assert attachment.file.name.startswith("crm/attachments/")


def test_file_without_extension_gets_one_from_its_content(person):
    attachment = services.attach_file(person, actor="test", file=ContentFile(PNG, name="scan"))
    assert attachment.filename == "scan.png"


@pytest.mark.parametrize("content, name, code, status", [
    (EXE, "invoice.pdf", "attachment_type_not_allowed", 415),
    (EXE, "tool.exe", "attachment_type_not_allowed", 415),
    (b"<html><script>alert(1)</script></html>\x00", "page.html", "attachment_type_not_allowed", 415),
    (PNG, "scan.pdf", "attachment_type_mismatch", 415),
    (b"plain words", "scan.jpg", "attachment_type_mismatch", 415),
    (b"", "empty.txt", "attachment_empty", 400),
])
def test_refused_types_write_nothing(person, media_root, content, name, code, status):
    with pytest.raises(DomainError) as exc:
        services.attach_file(person, actor="test", file=ContentFile(content, name=name))
    assert (exc.value.code, exc.value.status) == (code, status)
    assert "file" in exc.value.fields
    assert not Attachment.objects.exists()
    assert stored_files(media_root) == []


def test_oversized_file_refused(person, media_root, settings):
    settings.TARIFA_MAX_ATTACHMENT_BYTES = 1024
    with pytest.raises(DomainError) as exc:
        services.attach_file(person, actor="test", file=ContentFile(PDF + b"0" * 1024, name="big.pdf"))
    assert exc.value.code == "attachment_too_large" and exc.value.status == 413
    assert "1024" in exc.value.message
    assert not Attachment.objects.exists() and stored_files(media_root) == []
    assert services.attach_file(person, actor="test", file=ContentFile(PDF, name="small.pdf")).size == len(PDF)


def test_default_limit_is_ten_mebibytes(settings):
    del settings.TARIFA_MAX_ATTACHMENT_BYTES
    assert services.max_attachment_bytes() == 10 * 1024 * 1024


def test_contract_of_another_customer_refused(person, company, media_root):
    contract = services.create_contract(actor="test", customer=company)
    with pytest.raises(DomainError) as exc:
        services.attach_file(person, actor="test", file=ContentFile(PDF, name="a.pdf"), contract=contract)
    assert exc.value.code == "contract_of_other_customer"
    assert stored_files(media_root) == []


def test_signing_with_a_scan_attaches_it(person):
    contract = services.create_contract(actor="test", customer=person)
    signed = services.sign_contract(contract, actor="test", file=ContentFile(PDF, name="signed.pdf"))
    assert signed.signed_document.filename == "signed.pdf"
    assert signed.signed_document.contract == signed
    with pytest.raises(DomainError) as exc:
        services.remove_attachment(signed.signed_document, actor="test")
    assert exc.value.code == "attachment_is_signed_document"


def test_removed_attachment_is_archived_and_file_kept(person, media_root):
    attachment = services.attach_file(person, actor="test", file=ContentFile(b"hello\n", name="a.txt"))
    services.remove_attachment(attachment, actor="test", reason="wrong customer")
    attachment.refresh_from_db()
    assert attachment.archived_at is not None
    assert len(stored_files(media_root)) == 1


def test_download_needs_permission(person, make_user, staff_client, client):
    attachment = services.attach_file(person, actor="test", file=ContentFile(PDF, name="contract.pdf"))
    url = f"/crm/attachment/{attachment.pk}/download/"
    assert client.get(url).status_code == 302  # anonymous: to the login page
    staff_client(make_user("crm.view_customer", username="nosy"))
    assert client.get(url).status_code == 403
    staff_client(make_user("crm.view_attachment", username="clerk"))
    response = client.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"


def test_api_upload_and_download(person, make_user, api):
    clerk = api(make_user("crm.add_attachment", "crm.view_attachment", username="clerk"))
    upload = SimpleUploadedFile("scan.png", PNG, content_type="image/png")
    response = clerk.post("/api/v1/attachments/", {"customer": str(person.pk), "file": upload,
                                                   "description": "ID scan"}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["filename"], body["content_type"], body["size"]) == ("scan.png", "image/png", len(PNG))
    download = clerk.get(body["download_url"])
    assert download.status_code == 200 and b"".join(download.streaming_content) == PNG
    viewer = api(make_user("crm.view_customer", username="viewer"))
    assert viewer.get(body["download_url"]).status_code == 403


def test_api_refuses_wrong_type_with_code(person, make_user, api, media_root):
    clerk = api(make_user("crm.add_attachment", username="clerk"))
    upload = SimpleUploadedFile("invoice.pdf", EXE, content_type="application/pdf")
    response = clerk.post("/api/v1/attachments/", {"customer": str(person.pk), "file": upload}, format="multipart")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "attachment_type_not_allowed"
    assert not Attachment.objects.exists() and stored_files(media_root) == []


def test_api_refuses_oversized_with_code(person, make_user, api, settings, media_root):
    settings.TARIFA_MAX_ATTACHMENT_BYTES = 100
    clerk = api(make_user("crm.add_attachment", username="clerk"))
    upload = SimpleUploadedFile("big.txt", b"a" * 101, content_type="text/plain")
    response = clerk.post("/api/v1/attachments/", {"customer": str(person.pk), "file": upload}, format="multipart")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "attachment_too_large"
    assert not Attachment.objects.exists() and stored_files(media_root) == []


def test_api_sign_contract_with_uploaded_scan(person, make_user, api):
    signer = api(make_user("crm.sign_contract", "crm.view_contract", username="signer"))
    contract = services.create_contract(actor="test", customer=person)
    scan = SimpleUploadedFile("signed.tiff", TIFF, content_type="image/tiff")
    response = signer.post(f"/api/v1/contracts/{contract.pk}/sign/", {"file": scan}, format="multipart")
    assert response.status_code == 200, response.content
    document = Attachment.objects.get(pk=response.json()["signed_document"])
    assert (document.filename, document.content_type, document.contract_id) == ("signed.tiff", "image/tiff",
                                                                               contract.pk)
