from django.db import transaction

from .models import NumberSequence, local_branch_code


def next_number(series: str, *, width: int = 7, branch: str | None = None) -> str:
    """Take the next gap-free number of `series`, e.g. `HQ-C0000001`.

    Must run inside the caller's transaction: the counter row stays locked until it
    commits, so concurrent callers queue and a rolled-back number is reused.
    """
    branch = branch or local_branch_code()
    with transaction.atomic():
        NumberSequence.objects.get_or_create(branch=branch, series=series)
        seq = NumberSequence.objects.select_for_update().get(branch=branch, series=series)
        seq.last_value += 1
        seq.save(update_fields=["last_value"])
    return f"{branch}-{series}{seq.last_value:0{width}d}"
