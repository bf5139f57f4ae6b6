from django.urls import path

from . import views

app_name = "federation_protocol"

urlpatterns = [
    path("federation/v1/node", views.node_info, name="node"),
    path("federation/v1/streams/<str:sender>/<str:kind>/messages", views.receive_message, name="messages"),
    path("federation/v1/query/<str:name>", views.answer_query, name="query"),
]
