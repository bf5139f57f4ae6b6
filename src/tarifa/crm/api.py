"""REST API for customers and what is kept about them.

Flat resources, each filterable by `customer`: /customers/, /contacts/, /addresses/,
/authorised-contacts/, /contracts/ (+ sign/, terminate/), /notes/, /attachments/
(+ download/), /tax-schemes/. DELETE archives; nothing is ever deleted.
"""

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from tarifa.web.parsers import FormParser, JSONParser, MultiPartParser
from tarifa.web.api import RecordViewSet, StrictModelSerializer, StrictSerializer, router

from . import services
from .filters import CustomerApiFilter
from .models import Address, Attachment, AuthorisedContact, Contact, Contract, Customer, Note, TaxScheme
from .urls import attachment_response

# --- tax schemes ---------------------------------------------------------------------


class TaxSchemeSerializer(StrictModelSerializer):
    exempt_tax_codes = serializers.ListField(child=serializers.CharField(max_length=32), required=False)

    class Meta:
        model = TaxScheme
        fields = ["id", "code", "name", "exempt", "exempt_tax_codes", "description", "archived_at"]
        extra_kwargs = {"code": {"validators": []}}


class TaxSchemeViewSet(RecordViewSet):
    queryset = TaxScheme.objects.order_by("code")
    serializer_class = TaxSchemeSerializer
    filterset_fields = ["code", "exempt"]

    def create_service(*, actor, **data):
        return services.create_tax_scheme(actor=actor, **data)

    def update_service(scheme, *, actor, **data):
        return services.update_tax_scheme(scheme, actor=actor, **data)

    def archive_service(scheme, *, actor, reason=""):
        return services.archive_tax_scheme(scheme, actor=actor, reason=reason)


# --- contacts, addresses, authorised contacts ---------------------------------------

CUSTOMER_REF = {"queryset": Customer.objects.all()}


class ContactInputSerializer(StrictModelSerializer):
    class Meta:
        model = Contact
        fields = ["kind", "value", "label", "is_preferred"]


class ContactSerializer(StrictModelSerializer):
    customer = serializers.PrimaryKeyRelatedField(**CUSTOMER_REF)

    class Meta:
        model = Contact
        fields = ["id", "customer", "kind", "value", "label", "is_preferred", "created_at", "archived_at"]


class AddressInputSerializer(StrictModelSerializer):
    class Meta:
        model = Address
        fields = ["kind", "line1", "line2", "city", "postcode", "region", "country"]
        extra_kwargs = {"country": {"validators": []}}  # the service upper-cases, then validates


class AddressSerializer(StrictModelSerializer):
    customer = serializers.PrimaryKeyRelatedField(**CUSTOMER_REF)

    class Meta:
        model = Address
        fields = ["id", "customer", "kind", "line1", "line2", "city", "postcode", "region", "country",
                  "created_at", "archived_at"]
        extra_kwargs = {"country": {"validators": []}}


class AuthorisedContactInputSerializer(StrictModelSerializer):
    class Meta:
        model = AuthorisedContact
        fields = ["name", "position", "phone", "email", "authority"]


class AuthorisedContactSerializer(StrictModelSerializer):
    customer = serializers.PrimaryKeyRelatedField(**CUSTOMER_REF)

    class Meta:
        model = AuthorisedContact
        fields = ["id", "customer", "name", "position", "phone", "email", "authority", "created_at", "archived_at"]


def _sub_viewset(model, serializer, add, update, remove, doc):
    class SubViewSet(RecordViewSet):
        __doc__ = doc
        queryset = model.objects.select_related("customer").order_by("customer__number", "created_at")
        serializer_class = serializer
        filterset_fields = ["customer", "kind"] if hasattr(model, "kind") else ["customer"]

        def create_service(*, actor, customer, **data):
            return add(customer, actor=actor, **data)

        def update_service(obj, *, actor, **data):
            return update(obj, actor=actor, **data)

        def archive_service(obj, *, actor, reason=""):
            return remove(obj, actor=actor, reason=reason)

    SubViewSet.__name__ = SubViewSet.__qualname__ = f"{model.__name__}ViewSet"
    return SubViewSet


ContactViewSet = _sub_viewset(Contact, ContactSerializer, services.add_contact, services.update_contact,
                              services.remove_contact, "A customer's phones and e-mails. DELETE archives.")
AddressViewSet = _sub_viewset(Address, AddressSerializer, services.add_address, services.update_address,
                              services.remove_address, "A customer's addresses. DELETE archives.")
AuthorisedContactViewSet = _sub_viewset(
    AuthorisedContact, AuthorisedContactSerializer, services.add_authorised_contact,
    services.update_authorised_contact, services.remove_authorised_contact,
    "Persons who may act for an organization. DELETE archives.")


# --- customers -----------------------------------------------------------------------

CUSTOMER_FIELDS = ["kind", "first_name", "last_name", "birth_date", "document_type", "document_number",
                   "document_issued_by", "document_issue_date", "legal_name", "tax_id", "registration_number",
                   "registration_date", "legal_address", "tax_scheme", "language", "preferred_channel", "tags"]


class CustomerSerializer(StrictModelSerializer):
    display_name = serializers.CharField(read_only=True)
    tax_scheme = serializers.SlugRelatedField(slug_field="code", queryset=TaxScheme.objects.all(), required=False,
                                              allow_null=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False)
    contacts = serializers.SerializerMethodField()
    addresses = serializers.SerializerMethodField()

    class Meta:
        model = Customer
        fields = ["id", "number", "display_name", "status", *CUSTOMER_FIELDS, "contacts", "addresses",
                  "branch", "created_at", "updated_at", "archived_at"]
        read_only_fields = ["number", "status", "branch", "created_at", "updated_at", "archived_at"]

    @extend_schema_field(ContactInputSerializer(many=True))
    def get_contacts(self, customer) -> list[dict]:
        items = [c for c in customer.contacts.all() if c.archived_at is None]
        return ContactInputSerializer(items, many=True).data

    @extend_schema_field(AddressInputSerializer(many=True))
    def get_addresses(self, customer) -> list[dict]:
        items = [a for a in customer.addresses.all() if a.archived_at is None]
        return AddressInputSerializer(items, many=True).data


class CustomerCreateSerializer(CustomerSerializer):
    """Create: the profile plus, optionally, its first contacts, addresses and authorised persons."""

    contacts = ContactInputSerializer(many=True, required=False)
    addresses = AddressInputSerializer(many=True, required=False)
    authorised_contacts = AuthorisedContactInputSerializer(many=True, required=False)

    class Meta(CustomerSerializer.Meta):
        fields = CustomerSerializer.Meta.fields + ["authorised_contacts"]


class CustomerUpdateSerializer(CustomerSerializer):
    contacts = None
    addresses = None

    class Meta(CustomerSerializer.Meta):
        fields = [f for f in CustomerSerializer.Meta.fields if f not in ("contacts", "addresses")]


class CustomerViewSet(RecordViewSet):
    """Customers. `?search=` finds by name, number, phone, e-mail, document number or tax id.

    To register something with every new customer (the ledger's first billing account,
    say), subclass and set `create_service`, then register the subclass on "customers".
    """

    queryset = Customer.objects.select_related("tax_scheme").prefetch_related("contacts", "addresses") \
        .order_by("-created_at")
    serializer_class = CustomerSerializer
    filterset_class = CustomerApiFilter
    ordering_fields = ["number", "created_at", "last_name", "legal_name"]

    def get_serializer_class(self):
        if self.action == "create":
            return CustomerCreateSerializer
        if self.action in ("update", "partial_update"):
            return CustomerUpdateSerializer
        return CustomerSerializer

    def create_service(*, actor, **data):
        return services.create_customer(actor=actor, **data)

    def update_service(customer, *, actor, **data):
        return services.update_customer(customer, actor=actor, **data)

    def archive_service(customer, *, actor, reason=""):
        return services.archive_customer(customer, actor=actor, reason=reason)


# --- contracts -----------------------------------------------------------------------

class ContractSerializer(StrictModelSerializer):
    customer = serializers.PrimaryKeyRelatedField(**CUSTOMER_REF)
    date = serializers.DateField(required=False, allow_null=True)

    class Meta:
        model = Contract
        fields = ["id", "number", "customer", "date", "type", "title", "status", "signed_on", "terminated_on",
                  "signed_document", "created_at", "archived_at"]
        read_only_fields = ["number", "status", "signed_on", "terminated_on", "signed_document", "created_at",
                            "archived_at"]


class SignContractSerializer(StrictSerializer):
    signed_on = serializers.DateField(required=False, allow_null=True)
    document = serializers.PrimaryKeyRelatedField(queryset=Attachment.objects.all(), required=False, allow_null=True,
                                                  help_text="An attachment of the same customer: the signed scan.")
    file = serializers.FileField(required=False, help_text="Or upload the signed scan here (multipart).")
    note = serializers.CharField(required=False, allow_blank=True, max_length=500)


class TerminateContractSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=500)
    terminated_on = serializers.DateField(required=False, allow_null=True)


class ContractViewSet(RecordViewSet):
    """Contracts: created as drafts, then signed (crm.sign_contract) or terminated (crm.terminate_contract)."""

    queryset = Contract.objects.select_related("customer").order_by("-date", "-number")
    serializer_class = ContractSerializer
    filterset_fields = ["customer", "status", "type"]
    search_fields = ["number", "title"]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def create_service(*, actor, **data):
        return services.create_contract(actor=actor, **data)

    def update_service(contract, *, actor, **data):
        return services.update_contract(contract, actor=actor, **data)

    def archive_service(contract, *, actor, reason=""):
        return services.archive_contract(contract, actor=actor, reason=reason)

    @extend_schema(request=SignContractSerializer, responses=ContractSerializer)
    @action(detail=True, methods=["post"], required_permission="crm.sign_contract")
    def sign(self, request, pk=None):
        body = SignContractSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        contract = services.sign_contract(self.get_object(), actor=request.user, **body.validated_data)
        return Response(ContractSerializer(contract).data)

    @extend_schema(request=TerminateContractSerializer, responses=ContractSerializer)
    @action(detail=True, methods=["post"], required_permission="crm.terminate_contract")
    def terminate(self, request, pk=None):
        body = TerminateContractSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        contract = services.terminate_contract(self.get_object(), actor=request.user, **body.validated_data)
        return Response(ContractSerializer(contract).data)


# --- notes ---------------------------------------------------------------------------

class NoteSerializer(StrictModelSerializer):
    customer = serializers.PrimaryKeyRelatedField(**CUSTOMER_REF)

    class Meta:
        model = Note
        fields = ["id", "customer", "text", "author_label", "created_at"]
        read_only_fields = ["author_label", "created_at"]


class NoteViewSet(RecordViewSet):
    """Notes on customers: appended, never edited or deleted."""

    queryset = Note.objects.order_by("-created_at")
    serializer_class = NoteSerializer
    filterset_fields = ["customer"]

    def create_service(*, actor, customer, text):
        return services.add_note(customer, actor=actor, text=text)


# --- attachments ---------------------------------------------------------------------

class AttachmentSerializer(StrictModelSerializer):
    customer = serializers.PrimaryKeyRelatedField(**CUSTOMER_REF)
    contract = serializers.PrimaryKeyRelatedField(queryset=Contract.objects.all(), required=False, allow_null=True)
    file = serializers.FileField(write_only=True, help_text="PDF, PNG, JPEG, TIFF or plain text (multipart).")
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Attachment
        fields = ["id", "customer", "contract", "file", "filename", "description", "content_type", "size", "sha256",
                  "uploaded_by", "created_at", "archived_at", "download_url"]
        read_only_fields = ["filename", "content_type", "size", "sha256", "uploaded_by", "created_at",
                            "archived_at"]

    def get_download_url(self, attachment) -> str:
        from django.urls import reverse

        return reverse("api:attachment-download", args=[attachment.pk])


class AttachmentViewSet(RecordViewSet):
    """Files on customers and contracts. Upload as multipart; download through `download/`
    (crm.view_attachment). DELETE archives (the file is kept)."""

    queryset = Attachment.objects.order_by("-created_at")
    serializer_class = AttachmentSerializer
    filterset_fields = ["customer", "contract", "content_type"]
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def create_service(*, actor, customer, file, **data):
        return services.attach_file(customer, actor=actor, file=file, **data)

    def archive_service(attachment, *, actor, reason=""):
        return services.remove_attachment(attachment, actor=actor, reason=reason)

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiResponse(description="The file")})
    @action(detail=True, methods=["get"], required_permission="crm.view_attachment")
    def download(self, request, pk=None):
        return attachment_response(self.get_object())


router.register("customers", CustomerViewSet, basename="customer")
router.register("contacts", ContactViewSet, basename="contact")
router.register("addresses", AddressViewSet, basename="address")
router.register("authorised-contacts", AuthorisedContactViewSet, basename="authorisedcontact")
router.register("contracts", ContractViewSet, basename="contract")
router.register("notes", NoteViewSet, basename="note")
router.register("attachments", AttachmentViewSet, basename="attachment")
router.register("tax-schemes", TaxSchemeViewSet, basename="taxscheme")
