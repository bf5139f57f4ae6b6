from django.urls import path

from .framework import all_reports
from .views import ReportIndexView, ReportView

urlpatterns = [
    path("", ReportIndexView.as_view(), name="index"),
    *[path(f"{r.code}/", ReportView.as_view(report=r), name=r.code) for r in all_reports()],
]
