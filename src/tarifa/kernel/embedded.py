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


def server():
    global _server
    if _server is None:
        warnings.filterwarnings("ignore", module="platformdirs")
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        import pgserver

        _server = pgserver.get_server(pgdata_dir(), cleanup_mode="stop")
    return _server


def database_url(name: str = DATABASE_NAME) -> str:
    """Start the embedded server if needed, create database `name`, return its URL."""
    srv = server()
    exists = srv.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
    if "1 row" not in exists:
        srv.psql(f'CREATE DATABASE "{name}";')
    return srv.get_uri(name)
