from django.urls import path

from .coa_screens import NasHealthView, SubscriptionSessionsView

urlpatterns = [
    path("nas-health/", NasHealthView.as_view(), name="nas_health"),
    path("subscription/<uuid:pk>/sessions/", SubscriptionSessionsView.as_view(), name="subscription_sessions"),
]
