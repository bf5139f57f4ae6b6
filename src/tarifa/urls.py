from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from tarifa.web import api, views
from tarifa.web.urls import screen_patterns

api_patterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    *[path(route, view, name=name) for route, view, name, _perm in api.extra_endpoints],
    path("", include(api.router.urls)),
]

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    # Node-to-node endpoints (signed requests, not the staff API): tarifa/federation/views.py.
    path("", include("tarifa.federation.urls")),
    path("", include("tarifa.releases.protocol_urls")),
    path("api/v1/", include((api_patterns, "api"))),
    # The self-care portal's API (portal tokens only; its own schema): tarifa/portal/api.py.
    path("", include("tarifa.portal.api_urls")),
    path("", include("tarifa.web.urls")),
    *screen_patterns(),
]

handler403 = "tarifa.web.errors.forbidden"
handler404 = "tarifa.web.errors.not_found"
