"""Reads about reference releases (the screens, the API, federation status, the harness)."""

from tarifa.federation import selectors as federation

from .models import PullState, Release, ReleaseRefusal


def in_force() -> Release | None:
    """The release this node's reference data is: on a branch the last applied, on the centre the last
    published."""
    qs = Release.objects.order_by("-number")
    if federation.role() == "branch":
        qs = qs.filter(applied_at__isnull=False)
    return qs.first()


def in_force_number() -> int:
    release = in_force()
    return release.number if release else 0


def open_refusals():
    return ReleaseRefusal.objects.filter(resolved_at__isnull=True).order_by("number", "at")


def status() -> dict:
    """The release in force and what stops the next one: the harness's "every branch on the same release"
    compares `number` (and `content_hash`) across nodes."""
    release = in_force()
    state = PullState.objects.filter(id=1).first()
    return {
        "role": federation.role(),
        "number": release.number if release else 0,
        "content_hash": release.content_hash if release else "",
        "effective_date": release.effective_date.isoformat() if release else None,
        "applied_at": (release.applied_at or release.published_at).isoformat() if release else None,
        "refused": [{"number": r.number, "code": r.code, "message": r.message, "at": r.at.isoformat()}
                    for r in open_refusals()],
        "last_pull_at": state.last_attempt_at.isoformat() if state and state.last_attempt_at else None,
        "last_pull_error": state.last_error if state else "",
    }


def problems() -> list[dict]:
    """Refused releases, for `tarifa federation status` and the dashboard's federation tile."""
    return [{"code": "release_refused", "stream": f"releases/{r.number}", "since": r.at.isoformat(),
             "message": f"{r.code}: {r.message}"} for r in open_refusals()]


def releases_after(after: int, limit: int) -> list[Release]:
    return list(Release.objects.filter(number__gt=after).order_by("number")[:limit])
