"""Scripts: the only write path for scripts and their versions, and the one way to run one.

`run_script(script=..., context=..., actor=..., dry_run=..., purpose=...)` runs the script's current
version in a sandbox process (sandbox.py) with a CPU-time budget and a memory limit. The functions
the script calls (registry.py) run here, as `actor`, inside one savepoint of the caller's
transaction: they commit or roll back with the caller. A dry run, a script that fails or one that
is killed at a limit leaves nothing behind: its savepoint is rolled back. Every run is recorded
(ScriptRun) in the caller's transaction after that savepoint; a caller that rolls back its own
transaction (a vetoed ticket transition) calls `result.keep()` afterwards to keep the record.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Max

from tarifa.audit import services as recorded
from tarifa.audit.services import actor_label
from tarifa.kernel import clock
from tarifa.kernel.errors import DomainError, NotFound, PermissionDenied, ValidationFailed

from . import registry, sandbox, schedule
from .models import Script, ScriptRun, ScriptVersion

log = logging.getLogger(__name__)

MAX_SOURCE = 100_000
MAX_CONTEXT = 256 * 1024


def jsonable(value, *, what="value"):
    """`value` as plain JSON data (Decimal → text, dates → ISO text); a DomainError when it is not."""
    try:
        return json.loads(json.dumps(value, cls=DjangoJSONEncoder, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"The {what} is not JSON data: {exc}", code="not_json") from None


# Scripts and versions -----------------------------------------------------------------------------

def _check_source(source: str) -> str:
    source = (source or "").replace("\r\n", "\n")
    if not source.strip():
        raise ValidationFailed("A script needs source.", code="source_required", fields={"source": ["Required."]})
    if len(source) > MAX_SOURCE:
        raise ValidationFailed(f"At most {MAX_SOURCE} characters.", code="source_too_long",
                               fields={"source": [f"At most {MAX_SOURCE} characters."]})
    if problem := sandbox.check(source):
        raise ValidationFailed(f"Syntax error: {problem}", code="syntax_error", fields={"source": [problem]})
    return source


def _check_schedule(kind: str, expression: str) -> str:
    expression = " ".join((expression or "").split())
    if kind == Script.Kind.SCHEDULED:
        if not expression:
            raise ValidationFailed("A scheduled script needs a schedule.", code="schedule_required",
                                   fields={"schedule": ["Required for a scheduled script."]})
        if problem := schedule.check(expression):
            raise ValidationFailed(problem, code="invalid_schedule", fields={"schedule": [problem]})
    elif expression:
        raise ValidationFailed("Only scheduled scripts have a schedule.", code="schedule_not_allowed",
                               fields={"schedule": ["Only for scheduled scripts."]})
    return expression


def _new_version(script: Script, *, actor, source: str, note: str = "") -> ScriptVersion:
    number = (script.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    version = ScriptVersion.objects.create(script=script, number=number, source=source, note=note[:200],
                                           created_by=actor_label(actor)[:150])
    Script.objects.filter(pk=script.pk).update(current_version=version, updated_at=clock.now())
    script.current_version = version
    recorded.record(script, actor=actor, action="new_version", changes={"version": [number - 1 or None, number]},
                    message=note or f"Version {number} saved.")
    return version


@transaction.atomic
def create_script(*, actor, code, name, source, kind=Script.Kind.HANDLER, description="", schedule="",
                  run_as=None, active=True, note="") -> Script:
    """A script with its first version. Refuses a syntax error, a bad or misplaced schedule."""
    source = _check_source(source)
    expression = _check_schedule(kind, schedule)
    if Script.objects.filter(code=code).exists():
        raise ValidationFailed(f"A script {code} exists.", code="duplicate_code",
                               fields={"code": ["Already used by another script."]})
    script = recorded.create(Script, actor=actor, code=code, name=name, description=description, kind=kind,
                             schedule=expression, run_as=run_as, active=active)
    _new_version(script, actor=actor, source=source, note=note or "Created.")
    return script


@transaction.atomic
def update_script(script: Script, *, actor, source=None, note="", **changes) -> Script:
    """Change the script's settings; new source (different from the current) makes a new version.
    Changing the schedule restarts it from now (the slots before are not run)."""
    script = Script.objects.select_for_update().get(pk=script.pk)
    kind = changes.get("kind", script.kind)
    if "schedule" in changes or "kind" in changes:
        changes["schedule"] = _check_schedule(kind, changes.get("schedule", script.schedule))
        if changes["schedule"] != script.schedule:
            changes["last_scheduled_at"] = None
    if "code" in changes and changes["code"] != script.code and Script.objects.filter(code=changes["code"]).exists():
        raise ValidationFailed(f"A script {changes['code']} exists.", code="duplicate_code",
                               fields={"code": ["Already used by another script."]})
    script = recorded.update(script, actor=actor, **changes) if changes else script
    if source is not None:
        source = _check_source(source)
        if source != script.source:
            _new_version(script, actor=actor, source=source, note=note)
    return script


@transaction.atomic
def restore_version(version: ScriptVersion, *, actor, note="") -> ScriptVersion:
    """Make `version`'s source current again, as a new version (versions are never changed)."""
    script = Script.objects.select_for_update().get(pk=version.script_id)
    if script.current_version_id == version.pk:
        raise DomainError(f"Version {version.number} is the current version.", code="already_current", status=409)
    return _new_version(script, actor=actor, source=version.source,
                        note=note or f"Restored from version {version.number}.")


# Running ------------------------------------------------------------------------------------------

@dataclass
class ScriptResult:
    ok: bool
    value: object
    error: str | None
    run: ScriptRun
    outcome: str = ScriptRun.Outcome.OK
    log: list = field(default_factory=list)
    calls: list = field(default_factory=list)

    def keep(self) -> ScriptRun:
        """Record the run again when the caller's transaction that held it was rolled back."""
        if not ScriptRun.objects.filter(pk=self.run.pk).exists():
            self.run.rolled_back = True
            self.run.save(force_insert=True)
        return self.run


def _resolve(script) -> Script:
    if isinstance(script, Script):
        return script
    found = Script.objects.select_related("current_version").filter(code=str(script)).first()
    if found is None:
        raise NotFound(f"No script {script}.", code="script_not_found")
    return found


def _dispatcher(actor, *, allow_writes: bool, calls: list):
    label = actor_label(actor)

    def on_call(name: str, args: list, kwargs: dict) -> dict:
        started = time.monotonic()
        entry = {"function": name, "args": args, "kwargs": kwargs}
        exposed = registry.get(name)
        try:
            if exposed is None:
                raise DomainError(f"There is no function {name}.", code="unknown_function")
            if not registry.permitted(exposed, actor):
                raise PermissionDenied(f"{name} needs the permission {exposed.permission}, which {label} does not "
                                       f"have.", code="permission_denied")
            if not exposed.read_only and not allow_writes:
                raise PermissionDenied(f"{name} changes data; this run may only read.", code="read_only_run")
            if not isinstance(args, list) or not isinstance(kwargs, dict) or "actor" in kwargs:
                raise ValidationFailed(f"{name}: invalid arguments.", code="bad_arguments")
            try:
                inspect.signature(exposed.func).bind(*args, actor=actor, **kwargs)
            except TypeError as exc:
                raise ValidationFailed(f"{name}: {exc}", code="bad_arguments") from None
            with transaction.atomic():  # a savepoint: a call that fails leaves nothing behind
                value = jsonable(exposed.func(*args, actor=actor, **kwargs), what="result")
            entry.update(ok=True, value=value)
            answer = {"ok": True, "value": value}
        except DomainError as exc:
            entry.update(ok=False, error=f"{exc.message} ({exc.code})")
            answer = {"ok": False, "error": {"code": exc.code, "message": exc.message}}
        except Exception as exc:  # a bug in a function: the script sees an error, the log has the trace
            log.exception("script function %s failed", name)
            entry.update(ok=False, error=f"{name} failed: {type(exc).__name__}")
            answer = {"ok": False, "error": {"code": "internal_error", "message": f"{name} failed unexpectedly"}}
        entry["ms"] = round((time.monotonic() - started) * 1000, 1)
        calls.append(entry)
        return answer

    return on_call


def run_script(*, script, context=None, actor, dry_run=False, purpose="", allow_writes=True, version=None,
               cpu_ms=None, memory=None) -> ScriptResult:
    """Run `script` (a Script or its code) with `context` (JSON data, the script's `context`).

    Returns a ScriptResult (ok, value: what the script returned, error, run: the ScriptRun). Never
    raises for what the script does (an error, a limit): that is a failed result. Raises NotFound
    for an unknown script and `script_inactive` (409) for an inactive one (a dry run may test it).
    `version` runs another version than the current (the Test page of a version).
    """
    script = _resolve(script)
    if version is None:
        if not script.active and not dry_run:
            raise DomainError(f"Script {script.code} is not active.", code="script_inactive", status=409)
        version = script.current_version
    if version is None:
        raise DomainError(f"Script {script.code} has no source.", code="no_source", status=409)
    context = jsonable(context or {}, what="context")
    if len(json.dumps(context)) > MAX_CONTEXT:
        raise ValidationFailed("The context is too large.", code="context_too_large")
    calls: list = []
    functions = [f.name for f in registry.all_functions() if allow_writes or f.read_only]
    on_call = _dispatcher(actor, allow_writes=allow_writes, calls=calls)
    started_at, started = clock.now(), time.monotonic()
    with transaction.atomic():  # the run's savepoint: its calls' effects, kept only for a real run that succeeded
        outcome = sandbox.execute(version.source, context=context, functions=functions, on_call=on_call,
                                  cpu_ms=cpu_ms, memory=memory)
        rolled_back = dry_run or not outcome.ok
        if rolled_back:
            transaction.set_rollback(True)
    elapsed = time.monotonic() - started
    status = (ScriptRun.Outcome.OK if outcome.ok else
              ScriptRun.Outcome.FAILED if outcome.kind == "error" else ScriptRun.Outcome.KILLED)
    value = outcome.value if outcome.ok else None
    import datetime as dt

    run = ScriptRun.objects.create(
        script=script, version=version, purpose=str(purpose or "")[:200], actor=actor_label(actor)[:150],
        dry_run=bool(dry_run), started_at=started_at, finished_at=started_at + dt.timedelta(seconds=elapsed),
        duration_ms=round(elapsed * 1000), cpu_ms=round(outcome.cpu_ms) if outcome.cpu_ms is not None else None,
        outcome=status, error=outcome.error or "", calls=calls, log=outcome.logs, value=value, context=context,
        rolled_back=rolled_back and bool(calls))
    return ScriptResult(ok=outcome.ok, value=value, error=outcome.error, run=run, outcome=status, log=outcome.logs,
                        calls=calls)


def test_script(script: Script, *, actor, context=None, version=None) -> ScriptRun:
    """A dry run from the Test page or the API: the script's service calls are made and rolled back;
    the run (result, log lines, calls) is recorded, and the test in the script's history."""
    if registry.is_user(actor) and not actor.has_perm("scripts.test_script"):
        raise PermissionDenied("Testing scripts needs the permission scripts.test_script.")
    result = run_script(script=script, context=context, actor=actor, dry_run=True, version=version,
                        purpose=f"test of version {(version or script.current_version).number}"
                        if (version or script.current_version) else "test")
    recorded.record(script, actor=actor, action="test",
                    message=f"Dry run of version {result.run.version.number}: {result.run.get_outcome_display()}.")
    return result.run


# Scheduled scripts ------------------------------------------------------------------------------

def run_due_scripts(*, as_of=None) -> list[ScriptRun]:
    """Run each active scheduled script whose schedule has a slot since its last run, once per slot
    (missed slots are run once), as its `run_as` user or the system. Two workers never run a slot
    twice: the script's row is locked while it runs and its slot is recorded in the same transaction."""
    at = as_of or clock.now()
    zone = settings.TIME_ZONE
    runs = []
    for pk in Script.objects.filter(kind=Script.Kind.SCHEDULED, active=True, current_version__isnull=False) \
            .order_by("code").values_list("pk", flat=True):
        with transaction.atomic():
            script = (Script.objects.select_for_update(skip_locked=True, of=("self",))
                      .select_related("current_version", "run_as").filter(pk=pk, active=True).first())
            if script is None or not script.schedule or schedule.check(script.schedule):
                continue
            slot = schedule.due_slot(script.schedule, at, zone, last=script.last_scheduled_at,
                                     since=script.updated_at)
            if slot is None:
                continue
            Script.objects.filter(pk=script.pk).update(last_scheduled_at=slot)
            result = run_script(script=script, actor=script.run_as or "system",
                                context={"scheduled_at": slot.isoformat(), "script": script.code},
                                purpose=f"scheduled run of {slot:%Y-%m-%d %H:%M}")
            runs.append(result.run)
    return runs
