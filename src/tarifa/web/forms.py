from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.errors import DomainError


class RecordForm(forms.ModelForm):
    """The base of every ModelForm a screen registers (`ModelScreens.form_class`).

    `editing` tells an edit form (bound to a saved record) from a create form. Never test
    `self.instance.pk` for that: every business record's UUID default fills the pk the moment
    the unsaved instance is built, so a create form would believe it edits, drop its create-only
    fields, and the create service would be called without them (issue 10, item 1).
    `registry.register` refuses a ModelForm that does not derive from this class.
    """

    @property
    def editing(self) -> bool:
        return not self.instance._state.adding


def apply_domain_error(form, exc: DomainError) -> None:
    """Show a service's error on the form: field errors by field, the rest on top."""
    placed = False
    for name, errors in (exc.fields or {}).items():
        if name in form.fields:
            for error in errors:
                form.add_error(name, error)
            placed = True
    if not placed:
        form.add_error(None, exc.message)


class ArchiveForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 3}))


class ImportForm(forms.Form):
    file = forms.FileField(label=_("CSV file"), help_text=_("UTF-8, first row holds the column names."))

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.TARIFA_MAX_UPLOAD_BYTES:
            raise forms.ValidationError(_("The file is too large (%(size)s bytes; at most %(max)s).")
                                        % {"size": upload.size, "max": settings.TARIFA_MAX_UPLOAD_BYTES})
        return upload
