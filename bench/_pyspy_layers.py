"""Sum a py-spy profile (collapsed stacks, `py-spy record --format raw`) by layer and by stage.

    python -m bench._pyspy_layers /tmp/payments.pyspy

By layer: each sample counts for the innermost frame that is not the standard library (a
`json.dumps` called by DRF counts as DRF). By stage: the share of samples whose stack passes
through a named function (a sample may count in several stages: stages nest).
Not a benchmark (no `main()`): `bench/payments.py` writes the file with BENCH_PYSPY=<file>.
"""

import re
import sys
from collections import Counter

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")

LAYERS = [
    ("gunicorn (HTTP parsing, worker loop, socket writes)", ("gunicorn/",)),
    ("psycopg (client side of statements)", ("psycopg/", "psycopg_pool/")),
    ("Django ORM (query building and compiling, model instances)", ("django/db/",)),
    ("DRF (request, parsing, serializers, rendering)", ("rest_framework/",)),
    ("Django request/response, middleware, URLs, auth, sessions",
     ("django/", "whitenoise/", "django_htmx/")),
    ("procrastinate (job enqueue)", ("procrastinate/",)),
    ("Tarifa web (auth, permissions, idempotency, middleware)", ("tarifa/web/",)),
    ("Tarifa identity (token, permissions)", ("tarifa/identity/",)),
    ("Tarifa payments (serializers, service)", ("tarifa/payments/",)),
    ("Tarifa ledger, kernel, audit", ("tarifa/ledger/", "tarifa/kernel/", "tarifa/audit/")),
]
# Leaves where a thread waits rather than computes (py-spy counts a thread blocked in a C
# extension's wait as active): psycopg waiting for PostgreSQL's answer, which includes waiting
# for a row lock and for COMMIT's WAL flush; gunicorn threads waiting for a request.
WAITING_DB = ("Connection.wait (psycopg/connection.py", "BasePipeline._communicate_gen (psycopg/",
              "_exec_command (psycopg/")
WAITING_IDLE = ("EpollSelector.select (selectors.py", "_worker (concurrent/futures/thread.py",
                "PollableMethodQueue.defer (gunicorn/")

# (stage, function names or file fragments that mark it in a stack)
STAGES = [
    ("request in Django (WSGI handler and below)", ("get_response (",)),
    ("middleware before/after the view (outside DRF dispatch)", None),
    ("DRF dispatch (view, incl. auth, service, serializers)", ("dispatch (", "rest_framework/views.py")),
    ("authentication + permissions (token_user, has_perm)", ("token_user (", "has_permission (")),
    ("request body parsing + PaymentCreateSerializer validation", ("is_valid (",)),
    ("idempotency claim + stored answer", ("claim (", "complete (")),
    ("accept_payment (service, incl. ledger)", ("accept_payment (",)),
    ("ledger post_transfer", ("post_transfer (",)),
    ("payment number", ("next_number (",)),
    ("audit + domain events", ("_record_accepted (",)),
    ("PaymentSerializer (answer)", ("to_representation (",)),
    ("rendering JSON", ("render (",)),
    ("COMMIT", ("commit (",)),
]


def parse(path):
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        try:
            n = int(count)
        except ValueError:
            continue
        yield stack.split(";"), n


def is_stdlib(file):
    top = file.split("/", 1)[0].removesuffix(".py")
    return top in sys.stdlib_module_names or "/lib/python3" in file and "site-packages" not in file


def layer_of(frames):
    for frame in reversed(frames):
        m = FRAME.match(frame)
        file = m.group("file") if m else frame
        if is_stdlib(file) or file.startswith("<"):
            continue
        for name, parts in LAYERS:
            if any(p in file for p in parts):
                return name
        return f"other ({file.split('/', 1)[0]})"
    return "standard library alone (threads, selectors, ssl)"


def summarise(path):
    layers, stages, waiting = Counter(), Counter(), Counter()
    total = 0
    for frames, n in parse(path):
        leaf = frames[-1]
        if any(leaf.startswith(w) for w in WAITING_IDLE):
            waiting["idle thread (waiting for a request)"] += n
            continue
        total += n
        if any(leaf.startswith(w) for w in WAITING_DB):
            waiting["waiting for PostgreSQL (statement, row lock, COMMIT)"] += n
        else:
            layers[layer_of(frames)] += n
        joined = ";".join(frames)
        for stage, marks in STAGES:
            if marks and any(m in joined for m in marks):
                stages[stage] += n
        if "get_response (" in joined and not any(m in joined for m in ("dispatch (",)):
            stages["middleware before/after the view (outside DRF dispatch)"] += n
    return total, layers, stages, waiting


def main(argv):
    for path in argv:
        total, layers, stages, waiting = summarise(path)
        busy = sum(layers.values())
        print(f"{path}: {total} samples of threads in a request ({waiting['idle thread (waiting for a request)']} idle"
              f" samples left out); {busy} computing, {total - busy} waiting for PostgreSQL")
        print("\n| where a thread in a request is | share of its samples |\n| --- | --- |")
        print(f"| waiting for PostgreSQL (statement, row lock, COMMIT) | {100 * (total - busy) / total:.1f} % |")
        print(f"| computing in Python (below) | {100 * busy / total:.1f} % |")
        print("\n| computing: layer (innermost non-stdlib frame) | share of computing samples |\n| --- | --- |")
        for name, n in layers.most_common():
            print(f"| {name} | {100 * n / busy:.1f} % |")
        print("\n| stage (stack passes through; waits included) | share of request samples |\n| --- | --- |")
        for stage, _marks in STAGES:
            print(f"| {stage} | {100 * stages[stage] / total:.1f} % |")


if __name__ == "__main__":
    main(sys.argv[1:])
