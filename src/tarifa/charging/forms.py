"""Forms of online charging: the Diameter peers an operator allows."""

from tarifa.web.forms import RecordForm

from .models import DiameterPeer


class DiameterPeerForm(RecordForm):
    class Meta:
        model = DiameterPeer
        fields = ["origin_host", "realm", "ip_address", "note"]
