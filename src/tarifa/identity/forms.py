from django import forms
from django.contrib.auth.models import Permission
from django.utils.translation import gettext_lazy as _
from tarifa.web.forms import RecordForm

from .models import Role, User
from .permission_labels import GroupedPermissionsWidget, human_label


class PermissionChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, perm):
        return human_label(perm)


def tarifa_permissions():
    return (Permission.objects.select_related("content_type")
            .exclude(content_type__app_label__in=["admin", "auth", "contenttypes", "sessions", "procrastinate"])
            .order_by("content_type__app_label", "content_type__model", "codename"))


class RoleForm(RecordForm):
    permissions = PermissionChoiceField(queryset=Permission.objects.none(), required=False,
                                        widget=GroupedPermissionsWidget, label=_("Permissions"))

    class Meta:
        model = Role
        fields = ["name", "description"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["permissions"].queryset = tarifa_permissions()
        if self.editing:  # not `.pk`: the UUID default sets it before saving
            self.initial["permissions"] = list(self.instance.permissions.values_list("pk", flat=True))


class UserForm(RecordForm):
    roles = forms.ModelMultipleChoiceField(queryset=Role.objects.all(), required=False,
                                           widget=forms.CheckboxSelectMultiple, label=_("Roles"))
    password = forms.CharField(label=_("Password"), widget=forms.PasswordInput, required=False, strip=False,
                               help_text=_("At least 10 characters. Leave empty to set it later."))

    class Meta:
        model = User
        fields = ["username", "first_name", "last_name", "email"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.editing:  # not `.pk`: the UUID default sets it before saving
            del self.fields["password"]
            self.fields["username"].disabled = True
            self.initial["roles"] = list(self.instance.roles.values_list("pk", flat=True))

    def clean_username(self):
        # Uniqueness is checked by the service (case-insensitively), with the same error.
        return self.cleaned_data["username"]

    def validate_unique(self):
        pass


class SetPasswordForm(forms.Form):
    password = forms.CharField(label=_("New password"), widget=forms.PasswordInput, strip=False)


class IssueTokenForm(forms.Form):
    name = forms.CharField(label=_("Token name"), max_length=100, required=False)
    expires_at = forms.DateTimeField(label=_("Expires"), required=False,
                                     widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
