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
        self.retry_after = None  # seconds, when the login was refused as throttled
        super().__init__(*args, **kwargs)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            self.user_cache = identity.authenticate(username=data["username"], password=data["password"],
                                                    ip=client_ip(self.request) or None, request=self.request)
        except DomainError as exc:
            if exc.status == 429:
                self.retry_after = exc.retry_after or 60
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

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.retry_after:  # throttled: 429 with the time to wait, like the API
            response.status_code = 429
            response["Retry-After"] = str(form.retry_after)
        return response
