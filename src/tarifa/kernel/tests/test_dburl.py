"""url_for: child processes reach the same database as this one — over TCP, or over the embedded
server's Unix socket, which Django keeps in OPTIONS (a URL's ?host=/dir)."""

import psycopg
from django.db import connection

from tarifa.kernel.dburl import url_for


def test_a_tcp_server_and_a_socket_directory_give_libpq_urls():
    assert url_for({"HOST": "127.0.0.1", "PORT": 5432, "USER": "postgres", "PASSWORD": "", "NAME": "t"}) == \
        "postgresql://postgres@127.0.0.1:5432/t"
    assert url_for({"HOST": "db", "PORT": "", "USER": "u", "PASSWORD": "p@ss", "NAME": "t"}, "other") == \
        "postgresql://u:p%40ss@db/other"
    assert url_for({"HOST": "", "PORT": "", "USER": "postgres", "NAME": "t",
                    "OPTIONS": {"host": "/srv/pg data"}}) == "postgresql://postgres@/t?host=%2Fsrv%2Fpg%20data"


def test_the_url_reaches_the_database_this_process_uses(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), inet_server_port()")
        here = cursor.fetchone()
    with psycopg.connect(url_for(connection.settings_dict)) as conn:
        assert conn.execute("SELECT current_database(), inet_server_port()").fetchone() == here
