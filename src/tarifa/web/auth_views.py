from django import forms
from django.contrib.auth import login
from django.contrib.auth.views import LoginView as DjangoLoginView
from django.utils.translation import gettext_lazy as _

from tarifa.identity import services as identity
from tarifa.kernel.errors import DomainError

from .middleware import client_ip


class ThrottledAuthenticationForm(forms.Form):
    username = forms.CharField(label=_("Username"), max_length=150)
    password = forms.CharField(label=_("Password"), strip=False, widget=forms.PasswordInput)

    def __init__(self, request=None, *args, **kwargs):
        self.request = request
        self.user_cache = None
        super().__init__(*args, **kwargs)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            self.user_cache = identity.authenticate(username=data["username"], password=data["password"],
                                                    ip=client_ip(self.request) or None, request=self.request)
        except DomainError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from None
        return data

    def get_user(self):
        return self.user_cache


class LoginView(DjangoLoginView):
    form_class = ThrottledAuthenticationForm
    template_name = "web/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form):
        login(self.request, form.get_user())
        return super(DjangoLoginView, self).form_valid(form)
