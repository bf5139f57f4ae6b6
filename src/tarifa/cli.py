"""The `tarifa` command: every management command, on the same database as `make run`.

DATABASE_URL when set; otherwise the embedded PostgreSQL under ./var/, started on
demand and shared with a running `make run` (see kernel/embedded.py).
"""

import os
import sys


def main(argv=None):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tarifa.settings")
    argv = list(sys.argv if argv is None else argv)
    argv[0] = "tarifa"
    from django.core.management import execute_from_command_line

    execute_from_command_line(argv)


if __name__ == "__main__":
    main()
