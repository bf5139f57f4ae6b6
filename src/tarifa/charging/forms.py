"""Forms of online charging: the Diameter peers an operator allows, the rating groups it maps."""

from tarifa.web.forms import RecordForm

from .models import DiameterPeer, RatingGroup


class DiameterPeerForm(RecordForm):
    class Meta:
        model = DiameterPeer
        fields = ["origin_host", "realm", "ip_address", "note"]


class RatingGroupForm(RecordForm):
    class Meta:
        model = RatingGroup
        fields = ["kind", "number", "usage_type", "note"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from tarifa.rating.models import UsageType

        if "usage_type" in self.fields:
            self.fields["usage_type"].queryset = UsageType.objects.filter(archived_at__isnull=True).order_by("code")
