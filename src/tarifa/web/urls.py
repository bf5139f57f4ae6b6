"""URL patterns: the shell's own pages, then every registered model's screens."""

import importlib

from django.apps import apps
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import api, registry, views
from .auth_views import LoginView
from .jobs import JobListView
from .search import SearchAPIView, SearchView
from .task_views import TaskAPI, TaskDownloadView, TaskListAPI, TaskListView, TaskView, sample_task

app_name = "web"

urlpatterns = [
    path("", views.DashboardView.as_view(), name="dashboard"),
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("jobs/", JobListView.as_view(), name="jobs"),
    path("search/", SearchView.as_view(), name="search"),
    path("tasks/", TaskListView.as_view(), name="tasks"),
    path("tasks/<uuid:pk>/", TaskView.as_view(), name="task"),
    path("tasks/<uuid:pk>/download/", TaskDownloadView.as_view(), name="task_download"),
]
api.register_endpoint("search/", SearchAPIView.as_view(), "search", None)

registry.register_page(registry.Page("web:dashboard", "Dashboard", "", None, menu=False))
registry.register_page(registry.Page("web:search", "Search", "", None, menu=False))
registry.register_page(registry.Page("web:jobs", "Jobs", "Administration", "identity.view_jobs"))
registry.register_page(registry.Page("web:tasks", "My background tasks", "Administration", None, menu=False))
api.register_endpoint("tasks/", TaskListAPI.as_view(), "tasks", None)
api.register_endpoint("tasks/<uuid:pk>/", TaskAPI.as_view(), "task", "web.view_backgroundtask", sample=sample_task)


def screen_patterns():
    """One include per app: /<app_label>/<model>/… named <app_label>:<model>_<view>."""
    by_app: dict[str, list] = {}
    for s in registry.all_screens():
        m = s.model_name
        kw = {"screens": s}
        pats = by_app.setdefault(s.app_label, [])
        pats += [
            path(f"{m}/", views.ObjectListView.as_view(**kw), name=f"{m}_list"),
            path(f"{m}/<uuid:pk>/", views.ObjectDetailView.as_view(**kw), name=f"{m}_detail"),
        ]
        if s.create and s.form_class:
            pats.append(path(f"{m}/add/", views.ObjectEditView.as_view(**kw), name=f"{m}_add"))
        if s.update and s.form_class:
            pats.append(path(f"{m}/<uuid:pk>/edit/", views.ObjectEditView.as_view(**kw), name=f"{m}_edit"))
        if s.archive:
            pats.append(path(f"{m}/<uuid:pk>/archive/", views.ObjectArchiveView.as_view(**kw), name=f"{m}_archive"))
        if s.import_fields and s.create:
            pats.append(path(f"{m}/import/", views.ObjectImportView.as_view(**kw), name=f"{m}_import"))
        if s.actions:
            pats.append(path(f"{m}/<uuid:pk>/do/<slug:action>/", views.ObjectActionView.as_view(**kw), name=f"{m}_action"))
    # An app's own views (urls.py, `urlpatterns`) join its namespace.
    for config in apps.get_app_configs():
        if config.name.startswith("tarifa.") and config.label != "web":
            try:
                module = importlib.import_module(f"{config.name}.urls")
            except ModuleNotFoundError as exc:
                if exc.name != f"{config.name}.urls":
                    raise
                continue
            by_app.setdefault(config.label, []).extend(module.urlpatterns)
    return [path(f"{app}/", include((pats, app))) for app, pats in by_app.items()]
