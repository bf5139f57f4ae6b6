"""The portal API's URLs (mounted by tarifa/urls.py; also the portal schema's urlconf)."""

from django.urls import include, path

from .api import patterns, schema_view

urlpatterns = [
    path("api/portal/v1/schema/", schema_view(), name="portal_api_schema"),
    path("api/portal/v1/", include((patterns, "portal_api"))),
]
