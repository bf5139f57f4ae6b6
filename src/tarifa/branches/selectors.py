from .models import Branch


def local_branch() -> Branch | None:
    return Branch.objects.filter(is_local=True).first()
