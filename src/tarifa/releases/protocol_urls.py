from django.urls import path

from . import views

app_name = "releases_protocol"  # mounted at the root (tarifa/urls.py)

urlpatterns = [
    path("federation/v1/releases", views.releases, name="releases"),
]
