from django.http import FileResponse, Http404
from django.urls import path

from tarifa.web.views import PermissionRequiredView

from .models import Attachment


class AttachmentDownloadView(PermissionRequiredView):
    """The only way to a stored file: behind crm.view_attachment, never a public media URL."""

    permission = "crm.view_attachment"

    def get(self, request, pk):
        attachment = Attachment.objects.filter(pk=pk).first()
        if attachment is None:
            raise Http404("No such attachment")
        return attachment_response(attachment)


def attachment_response(attachment: Attachment) -> FileResponse:
    try:
        handle = attachment.file.open("rb")
    except FileNotFoundError:
        raise Http404("The stored file is missing") from None
    # Served as a download with the type found at upload, so a browser never renders it inline.
    return FileResponse(handle, as_attachment=True, filename=attachment.filename,
                        content_type=attachment.content_type)


urlpatterns = [
    path("attachment/<uuid:pk>/download/", AttachmentDownloadView.as_view(), name="attachment_download"),
]
