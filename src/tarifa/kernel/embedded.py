"""The embedded PostgreSQL server (pgserver wheel) used when no DATABASE_URL is given.

pgserver keeps a list of the processes holding the server: each process that calls
`database_url()` registers itself, and the server stops when the last one exits. So
`make run` and any `tarifa` command started beside it share one server safely.
"""

import logging
import warnings
from pathlib import Path

from .home import var_dir

DATABASE_NAME = "tarifa"

_server = None


def pgdata_dir() -> Path:
    return var_dir() / "pgdata"


def _forget_dead_holders() -> None:
    """Drop processes that died without cleaning up (kill -9) from pgserver's holder list.

    Otherwise their ids stay listed forever and the server is never stopped by the
    last live holder.
    """
    import json

    import psutil
    from pgserver.postgres_server import PostgresServer

    path = pgdata_dir() / ".handle_pids.json"
    with PostgresServer._lock:
        if not path.exists():
            return
        pids = json.loads(path.read_text() or "[]")
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            path.write_text(json.dumps(alive))


def server():
    global _server
    if _server is None:
        warnings.filterwarnings("ignore", module="platformdirs")
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        import pgserver

        _forget_dead_holders()
        _server = pgserver.get_server(pgdata_dir(), cleanup_mode="stop")
    return _server


def database_url(name: str = DATABASE_NAME) -> str:
    """Start the embedded server if needed, create database `name`, return its URL."""
    srv = server()
    exists = srv.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
    if "1 row" not in exists:
        srv.psql(f'CREATE DATABASE "{name}";')
    return srv.get_uri(name)
