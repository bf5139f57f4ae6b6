from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from tarifa.web.api import RecordViewSet, StrictModelSerializer, StrictSerializer, register_endpoint, router

from . import selectors, services
from .models import Node, NodeKey


class NodeKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = NodeKey
        fields = ["key_id", "public_key", "valid_from", "valid_until"]


class NodeSerializer(serializers.ModelSerializer):
    keys = NodeKeySerializer(many=True, read_only=True)

    class Meta:
        model = Node
        fields = ["id", "code", "name", "role", "base_url", "keys", "archived_at"]


class NodeWriteSerializer(StrictModelSerializer):
    class Meta:
        model = Node
        fields = ["code", "name", "role", "base_url"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance is not None:
            self.fields.pop("code")  # never changes


class AddKeySerializer(StrictSerializer):
    key_id = serializers.CharField(max_length=100)
    public_key = serializers.CharField(max_length=200)
    valid_from = serializers.DateTimeField(required=False, allow_null=True)
    valid_until = serializers.DateTimeField(required=False, allow_null=True)


class EndKeySerializer(StrictSerializer):
    key_id = serializers.CharField(max_length=100)
    valid_until = serializers.DateTimeField(required=False, allow_null=True)


class StreamResumeSerializer(StrictSerializer):
    kind = serializers.CharField(max_length=40, required=False, allow_blank=True)


class PingSerializer(StrictSerializer):
    count = serializers.IntegerField(min_value=1, max_value=1000, default=1)
    kind = serializers.CharField(max_length=40, default="test")


class PingResultSerializer(serializers.Serializer):
    sent = serializers.IntegerField()
    message_ids = serializers.ListField(child=serializers.UUIDField())


class StreamsSerializer(serializers.Serializer):
    outbound = serializers.ListField(child=serializers.DictField())
    inbound = serializers.ListField(child=serializers.DictField())
    not_yet_numbered = serializers.IntegerField()


class NodeViewSet(RecordViewSet):
    """The federation's node registry: codes, roles, addresses and public keys of the nodes this node talks to."""

    queryset = Node.objects.prefetch_related("keys").order_by("code")
    serializer_class = NodeSerializer
    write_serializer_class = NodeWriteSerializer
    create_service = services.create_node
    update_service = services.update_node
    archive_service = services.archive_node
    search_fields = ["code", "name"]
    filterset_fields = ["role"]

    @extend_schema(request=AddKeySerializer, responses=NodeSerializer)
    @action(detail=True, methods=["post"], url_path="keys", required_permission="federation.add_nodekey")
    def add_key(self, request, pk=None):
        body = AddKeySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        node = self.get_object()
        services.add_node_key(node, actor=request.user, **body.validated_data)
        return Response(NodeSerializer(Node.objects.get(pk=node.pk)).data, status=201)

    @extend_schema(request=EndKeySerializer, responses=NodeSerializer)
    @action(detail=True, methods=["post"], url_path="end-key", required_permission="federation.add_nodekey")
    def end_key(self, request, pk=None):
        body = EndKeySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        node = self.get_object()
        services.end_node_key(node, actor=request.user, **body.validated_data)
        return Response(NodeSerializer(Node.objects.get(pk=node.pk)).data)

    @extend_schema(responses=StreamsSerializer)
    @action(detail=True, methods=["get"], required_permission="federation.view_node")
    def streams(self, request, pk=None):
        return Response(selectors.streams_of(self.get_object()))

    @extend_schema(request=PingSerializer, responses={201: PingResultSerializer})
    @action(detail=True, methods=["post"], required_permission="federation.change_node")
    def ping(self, request, pk=None):
        """Send test messages (type `ping`, answered with their payload) to this node, in one transaction:
        to check a link, and the fault harness's workload."""
        body = PingSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        ids = services.send_pings(self.get_object(), **body.validated_data)
        return Response({"sent": len(ids), "message_ids": ids}, status=201)

    @extend_schema(request=StreamResumeSerializer, responses=StreamsSerializer)
    @action(detail=True, methods=["post"], required_permission="federation.resume_stream")
    def resume(self, request, pk=None):
        body = StreamResumeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        node = self.get_object()
        services.resume_stream(node, actor=request.user, kind=body.validated_data.get("kind") or None)
        return Response(selectors.streams_of(node))


class ProblemSerializer(serializers.Serializer):
    code = serializers.CharField()
    stream = serializers.CharField()
    since = serializers.CharField()
    message = serializers.CharField()


class StatusSerializer(serializers.Serializer):
    role = serializers.CharField()
    code = serializers.CharField()
    problems = ProblemSerializer(many=True)


class FederationStatusAPI(APIView):
    """This node's role and code, and the federation problems an operator must look at (stopped streams,
    refused messages, unreachable peers)."""

    required_permission = "federation.view_node"

    @extend_schema(responses=StatusSerializer)
    def get(self, request):
        from .extensions import extra_status

        return Response({"role": selectors.role(), "code": selectors.own_code(), "problems": selectors.problems(),
                         **extra_status()})


router.register("federation/nodes", NodeViewSet, basename="node")
register_endpoint("federation/status/", FederationStatusAPI.as_view(), "federation-status", "federation.view_node")
