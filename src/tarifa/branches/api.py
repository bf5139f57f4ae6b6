from rest_framework import serializers

from tarifa.web.api import RecordViewSet, router

from .models import Branch


class BranchSerializer(serializers.ModelSerializer):
    class Meta:
        model = Branch
        fields = ["id", "code", "name", "is_local", "is_central"]


class BranchViewSet(RecordViewSet):
    queryset = Branch.objects.order_by("code")
    serializer_class = BranchSerializer


router.register("branches", BranchViewSet, basename="branch")
