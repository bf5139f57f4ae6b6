from tarifa.web.forms import RecordForm
from tarifa.web.registry import ModelScreens, register

from . import services
from .models import Branch


class BranchForm(RecordForm):
    class Meta:
        model = Branch
        fields = ["name"]


register(ModelScreens(
    model=Branch, area="Administration", columns=["code", "name", "is_local", "is_central"],
    form_class=BranchForm, update=services.update_branch, ordering=["code"],
))
