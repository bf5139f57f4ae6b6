from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from tarifa.kernel.errors import NotFound
from tarifa.web.api import RecordViewSet, StrictModelSerializer, StrictSerializer, router

from . import services
from .models import Script, ScriptRun, ScriptVersion


class ScriptSerializer(StrictModelSerializer):
    source = serializers.CharField(max_length=services.MAX_SOURCE, trim_whitespace=False,
                                   help_text="The current version's Lua source; new source makes a new version.")
    note = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=200,
                                 help_text="A note on the version the source makes.")
    current_version = serializers.IntegerField(source="current_version.number", read_only=True, allow_null=True)
    run_as = serializers.SlugRelatedField(slug_field="username", queryset=get_user_model().objects.all(),
                                          required=False, allow_null=True)

    class Meta:
        model = Script
        fields = ["id", "code", "name", "description", "kind", "schedule", "run_as", "active", "source", "note",
                  "current_version", "last_scheduled_at", "created_at", "updated_at"]
        read_only_fields = ["last_scheduled_at", "created_at", "updated_at"]
        validators = []
        extra_kwargs = {"code": {"validators": []}}


class ScriptVersionSerializer(serializers.ModelSerializer):
    script = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = ScriptVersion
        fields = ["id", "script", "number", "source", "note", "created_at", "created_by"]
        read_only_fields = fields


class ScriptRunSerializer(serializers.ModelSerializer):
    script = serializers.SlugRelatedField(slug_field="code", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)

    class Meta:
        model = ScriptRun
        fields = ["id", "script", "version", "purpose", "actor", "dry_run", "started_at", "finished_at",
                  "duration_ms", "cpu_ms", "outcome", "error", "calls", "log", "value", "context", "rolled_back"]
        read_only_fields = fields


class ScriptTestSerializer(StrictSerializer):
    context = serializers.JSONField(required=False, help_text="What the script reads as `context` (an object).")
    version = serializers.IntegerField(required=False, min_value=1,
                                       help_text="The version to test (default: the current one).")

    def validate_context(self, value):
        if value is not None and not isinstance(value, dict):
            raise serializers.ValidationError("An object.")
        return value or {}


class ScriptViewSet(RecordViewSet):
    """Scripts (Lua): POST/PATCH with `source` saves a new version; …/versions lists them;
    POST …/test runs a dry run (service calls rolled back) and answers the recorded run."""

    queryset = Script.objects.select_related("current_version", "run_as").order_by("code")
    serializer_class = ScriptSerializer
    filterset_fields = ["kind", "active", "code"]
    create_service = services.create_script
    update_service = services.update_script

    @extend_schema(responses=ScriptVersionSerializer(many=True))
    @action(detail=True, methods=["get"], required_permission="scripts.view_scriptversion", pagination_class=None)
    def versions(self, request, pk=None):
        script = self.get_object()
        return Response(ScriptVersionSerializer(script.versions.order_by("-number"), many=True).data)

    @extend_schema(request=ScriptTestSerializer, responses=ScriptRunSerializer)
    @action(detail=True, methods=["post"], required_permission="scripts.test_script")
    def test(self, request, pk=None):
        script = self.get_object()
        body = ScriptTestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = None
        if body.validated_data.get("version"):
            version = script.versions.filter(number=body.validated_data["version"]).first()
            if version is None:
                raise NotFound(f"Script {script.code} has no version {body.validated_data['version']}.",
                               fields={"version": ["Not found."]})
        run = services.test_script(script, actor=request.user, context=body.validated_data.get("context") or {},
                                   version=version)
        return Response(ScriptRunSerializer(run).data)


class ScriptVersionViewSet(RecordViewSet):
    """Saved versions (never changed); POST …/restore makes one current again, as a new version."""

    queryset = ScriptVersion.objects.select_related("script").order_by("script__code", "-number")
    serializer_class = ScriptVersionSerializer
    filterset_fields = ["script", "number"]

    @extend_schema(request=None, responses=ScriptVersionSerializer)
    @action(detail=True, methods=["post"], required_permission="scripts.change_script")
    def restore(self, request, pk=None):
        return Response(ScriptVersionSerializer(services.restore_version(self.get_object(), actor=request.user)).data)


class ScriptRunViewSet(RecordViewSet):
    """The run log: every run of every script (handlers, scheduled runs, dry runs)."""

    queryset = ScriptRun.objects.select_related("script", "version").order_by("-started_at")
    serializer_class = ScriptRunSerializer
    filterset_fields = ["script", "outcome", "dry_run"]


router.register("scripts", ScriptViewSet, basename="script")
router.register("script-versions", ScriptVersionViewSet, basename="scriptversion")
router.register("script-runs", ScriptRunViewSet, basename="scriptrun")
