import pytest

from tarifa.inventory import services
from tarifa.inventory.models import Item, Location


@pytest.fixture(autouse=True)
def inventory_ok(request):
    """Every inventory test ends with every invariant of `tarifa inventory check` holding."""
    yield
    if "db" not in request.fixturenames and "transactional_db" not in request.fixturenames \
            and not request.node.get_closest_marker("django_db"):
        return
    from tarifa.inventory.selectors import check_inventory

    report = check_inventory()
    assert report["ok"], report["problems"]


@pytest.fixture
def stock(db, django_user_model):
    """A warehouse, a technician's van, a customer, a serial router and a cable by the metre."""
    from tarifa.crm import services as crm

    tech = django_user_model.objects.create_user(username="tech1", first_name="Tom", last_name="Tech")
    warehouse = services.create_location(actor="system", code="WH1", name="Main warehouse",
                                         kind=Location.Kind.WAREHOUSE)
    van = services.technician_location(tech)
    customer = crm.create_customer(actor="system", kind="individual", first_name="Ann", last_name="Lee")
    router = services.create_item(actor="system", code="RT-1", name="AX3000", vendor="Acme",
                                  kind=Item.Kind.ROUTER, currency="EUR", cost="40")
    cable = services.create_item(actor="system", code="CBL", name="Drop cable", kind=Item.Kind.CABLE,
                                 tracking=Item.Tracking.QUANTITY, unit=Item.Unit.METRE, currency="EUR", cost="0.5")

    class S:
        pass

    s = S()
    s.tech, s.warehouse, s.van, s.customer, s.router, s.cable = tech, warehouse, van, customer, router, cable
    return s
