import pytest


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Every test stores files in its own directory, so "nothing written" can be checked."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def schemes(db):
    from tarifa.crm import services

    return {
        "standard": services.create_tax_scheme(actor="test", code="standard", name="Standard"),
        "exempt": services.create_tax_scheme(actor="test", code="exempt", name="Exempt", exempt=True),
    }


@pytest.fixture
def person(db):
    from tarifa.crm import services

    return services.create_customer(
        actor="test", kind="individual", first_name="Maria", last_name="Garcia", document_type="passport",
        document_number="P1234567",
        contacts=[{"kind": "phone", "value": "+1 (555) 010-0101", "is_preferred": True},
                  {"kind": "email", "value": "maria@example.com"}],
        addresses=[{"kind": "service", "line1": "12 Elm Street", "city": "Springfield", "country": "us"}])


@pytest.fixture
def company(db):
    from tarifa.crm import services

    return services.create_customer(actor="test", kind="organization", legal_name="Acme Logistics LLC",
                                    tax_id="US-12-3456789",
                                    authorised_contacts=[{"name": "Helen Park", "position": "CFO"}])
