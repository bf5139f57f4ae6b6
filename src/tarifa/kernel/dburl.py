"""A libpq URL for a Django database's settings, for child processes (servers, workers, benchmarks) that
must reach the same database: a TCP host, or a Unix socket directory (the embedded server)."""

from urllib.parse import quote, urlencode


def url_for(settings_dict: dict, dbname: str | None = None) -> str:
    s = settings_dict
    user, password = quote(s.get("USER") or "", safe=""), quote(s.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    options = s.get("OPTIONS") or {}
    host = s.get("HOST") or options.get("host") or ""  # a URL's ?host=/socket/dir lands in OPTIONS
    port = str(s.get("PORT") or options.get("port") or "")
    name = quote(dbname or s["NAME"], safe="")
    if host.startswith("/"):  # a Unix socket directory
        return f"postgresql://{auth}/{name}?{urlencode({'host': host, **({'port': port} if port else {})}, quote_via=quote)}"
    return f"postgresql://{auth}{host or 'localhost'}{':' + port if port else ''}/{name}"
