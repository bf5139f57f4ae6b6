from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from tarifa.web.api import RecordViewSet, StrictModelSerializer, StrictSerializer, register_endpoint, router

from . import selectors, services
from .models import NumberRange, Release


class ReleaseSerializer(serializers.ModelSerializer):
    class Meta:
        model = Release
        fields = ["id", "number", "format_version", "effective_date", "centre", "published_at", "published_by",
                  "note", "content_hash", "key_id", "counts", "changes", "origin", "applied_at"]


class ReleaseViewSet(RecordViewSet):
    """Reference releases: on the centre those it published, on a branch those it applied (newest first)."""

    queryset = Release.objects.order_by("-number")
    serializer_class = ReleaseSerializer
    filterset_fields = ["origin", "number"]


class RefusalSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    code = serializers.CharField()
    message = serializers.CharField()
    at = serializers.CharField()


class ReleaseStatusSerializer(serializers.Serializer):
    role = serializers.CharField()
    number = serializers.IntegerField(help_text="The release in force (0: none).")
    content_hash = serializers.CharField()
    effective_date = serializers.CharField(allow_null=True)
    applied_at = serializers.CharField(allow_null=True)
    refused = RefusalSerializer(many=True)
    last_pull_at = serializers.CharField(allow_null=True)
    last_pull_error = serializers.CharField()


class ReleaseStatusAPI(APIView):
    """The reference release in force on this node, refused releases and the last pull."""

    required_permission = "releases.view_release"

    @extend_schema(responses=ReleaseStatusSerializer)
    def get(self, request):
        return Response(selectors.status())


class PreviewSerializer(serializers.Serializer):
    next_number = serializers.IntegerField()
    previous = serializers.IntegerField(allow_null=True)
    counts = serializers.DictField()
    changes = serializers.DictField()
    unchanged = serializers.BooleanField()


class PublishSerializer(StrictSerializer):
    effective_date = serializers.DateField(required=False, allow_null=True)
    note = serializers.CharField(required=False, allow_blank=True, default="")
    confirm = serializers.BooleanField(help_text="Must be true: publishing reaches every branch.")

    def validate_confirm(self, value):
        if value is not True:
            raise serializers.ValidationError("Confirm the publication with true (see GET …/releases/preview/).")
        return value


class ReleasePreviewAPI(APIView):
    """Centre: what the next release would hold and its difference from the last one."""

    required_permission = "releases.publish_release"

    @extend_schema(responses=PreviewSerializer)
    def get(self, request):
        from tarifa.federation import selectors as federation

        if federation.role() == "branch":
            raise services.NotTheCentre("A branch does not publish reference releases: the centre does.")
        return Response(services.preview())


class ReleasePublishAPI(APIView):
    """Centre: publish the reference data as the next signed release."""

    required_permission = "releases.publish_release"

    @extend_schema(request=PublishSerializer, responses=ReleaseSerializer)
    def post(self, request):
        body = PublishSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        release = services.publish(actor=request.user, effective_date=body.validated_data.get("effective_date"),
                                   note=body.validated_data.get("note", ""))
        return Response(ReleaseSerializer(release).data, status=201)


class PullResultSerializer(serializers.Serializer):
    in_force = serializers.IntegerField()
    releases = serializers.ListField(child=serializers.DictField())
    refused = serializers.BooleanField()


class ReleasePullAPI(APIView):
    """Branch: fetch and apply the centre's releases after the one in force, now."""

    required_permission = "releases.pull_releases"

    @extend_schema(request=None, responses=PullResultSerializer)
    def post(self, request):
        return Response(services.pull(actor=request.user))


class NumberRangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = NumberRange
        fields = ["id", "kind", "first", "last", "assigned_branch", "note", "branch", "archived_at"]


class NumberRangeWriteSerializer(StrictModelSerializer):
    class Meta:
        model = NumberRange
        fields = ["kind", "first", "last", "assigned_branch", "note"]


class NumberRangeViewSet(RecordViewSet):
    """Identifier ranges the centre allocates to branches (published in reference releases)."""

    queryset = NumberRange.objects.order_by("kind", "first")
    serializer_class = NumberRangeSerializer
    write_serializer_class = NumberRangeWriteSerializer
    create_service = services.create_number_range
    update_service = services.update_number_range
    archive_service = services.archive_number_range
    filterset_fields = ["kind", "assigned_branch"]


register_endpoint("releases/status/", ReleaseStatusAPI.as_view(), "release-status", "releases.view_release")
register_endpoint("releases/preview/", ReleasePreviewAPI.as_view(), "release-preview", "releases.publish_release")
register_endpoint("releases/publish/", ReleasePublishAPI.as_view(), "release-publish", "releases.publish_release")
register_endpoint("releases/pull/", ReleasePullAPI.as_view(), "release-pull", "releases.pull_releases")
router.register("releases", ReleaseViewSet, basename="release")
router.register("number-ranges", NumberRangeViewSet, basename="numberrange")
