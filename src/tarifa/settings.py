"""Tarifa settings, read from the environment.

Production: set TARIFA_SECRET_KEY, TARIFA_ALLOWED_HOSTS, DATABASE_URL and leave
TARIFA_DEBUG unset; cookies are then secure-only (see README).
"""

import os
from pathlib import Path

import dj_database_url

from tarifa.kernel.home import var_dir


def env(name, default=None):
    return os.environ.get(name, default)


def env_bool(name, default=False):
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default=""):
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


BASE_DIR = Path(__file__).resolve().parent
VAR_DIR = var_dir()
TESTING = bool(env("PYTEST_VERSION"))

DEBUG = env_bool("TARIFA_DEBUG", False)


def _secret_key():
    if env("TARIFA_SECRET_KEY"):
        return env("TARIFA_SECRET_KEY")
    # Local installs: a key generated once and kept under var/.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        import secrets

        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("TARIFA_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("TARIFA_CSRF_TRUSTED_ORIGINS", "")
SECURE_COOKIES = env_bool("TARIFA_SECURE_COOKIES", False)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = int(env("TARIFA_SESSION_AGE", str(12 * 3600)))
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Addresses of reverse proxies whose X-Forwarded-For is believed (web.middleware.client_ip): the
# client address of audit records and rate limits. Empty (default): X-Forwarded-For is ignored.
TARIFA_TRUSTED_PROXIES = env_list("TARIFA_TRUSTED_PROXIES", "")
if env_bool("TARIFA_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

TARIFA_BRANCH_CODE = env("TARIFA_BRANCH_CODE", "HQ")
TARIFA_BRANCH_NAME = env("TARIFA_BRANCH_NAME", "Head office")
# Federation (tarifa.federation, docs/federation.md): this installation is the centre, a branch, or
# standalone (default: nothing federation runs, the endpoint answers 404); its node code (default: the
# branch code). Relay retries back off exponentially from _RETRY_BASE to _RETRY_MAX seconds; a peer
# that does not answer within _TIMEOUT seconds is an attempt failed; a signature more than _MAX_SKEW
# seconds off this node's clock is refused.
TARIFA_NODE_ROLE = env("TARIFA_NODE_ROLE", "standalone")
TARIFA_NODE_CODE = env("TARIFA_NODE_CODE", "") or TARIFA_BRANCH_CODE
TARIFA_FEDERATION_RETRY_BASE = float(env("TARIFA_FEDERATION_RETRY_BASE", "1"))
TARIFA_FEDERATION_RETRY_MAX = float(env("TARIFA_FEDERATION_RETRY_MAX", "300"))
TARIFA_FEDERATION_TIMEOUT = float(env("TARIFA_FEDERATION_TIMEOUT", "10"))
TARIFA_FEDERATION_MAX_SKEW = int(env("TARIFA_FEDERATION_MAX_SKEW", "300"))
# The currency new tariffs, billing accounts and payments start with (kernel.money.default_currency).
TARIFA_DEFAULT_CURRENCY = env("TARIFA_DEFAULT_CURRENCY", "USD")
# Fernet keys for secrets at rest, comma-separated, the first encrypts (tarifa.kernel.secrets).
# Unset: a key derived from SECRET_KEY.
TARIFA_ENCRYPTION_KEYS = env("TARIFA_ENCRYPTION_KEYS", "")
# The country calling code a phone number written without one is read in (e.g. "1"); empty:
# numbers must be given with their country code (+…). Subscriptions store E.164.
TARIFA_DEFAULT_COUNTRY_CODE = env("TARIFA_DEFAULT_COUNTRY_CODE", "")
# Network access (tarifa.aaa): the RADIUS server's address and ports (`tarifa aaa serve`, `make run`),
# how long the authentication log is kept, and after how many missed Interim-Updates an open
# session is closed as stale. TARIFA_AAA_ENABLED=0 leaves the RADIUS server out of `tarifa run`.
TARIFA_AAA_BIND = env("TARIFA_AAA_BIND", "127.0.0.1")
TARIFA_AAA_AUTH_PORT = int(env("TARIFA_AAA_AUTH_PORT", "1812"))
TARIFA_AAA_ACCT_PORT = int(env("TARIFA_AAA_ACCT_PORT", "1813"))
TARIFA_AAA_ENABLED = env_bool("TARIFA_AAA_ENABLED", True)
TARIFA_AAA_AUTH_LOG_DAYS = int(env("TARIFA_AAA_AUTH_LOG_DAYS", "30"))
TARIFA_AAA_STALE_FACTOR = int(env("TARIFA_AAA_STALE_FACTOR", "3"))
# CoA-Request / Disconnect-Request to a NAS: seconds to wait for each transmission, transmissions in all.
TARIFA_AAA_COA_TIMEOUT = float(env("TARIFA_AAA_COA_TIMEOUT", "1.0"))
TARIFA_AAA_COA_ATTEMPTS = int(env("TARIFA_AAA_COA_ATTEMPTS", "3"))
# RADIUS prepaid (tarifa.aaa.prepaid): the usage types a prepaid subscriber's session may be charged
# online as (the first the tariff rates wins; its measure, time or bytes, says Session-Timeout or a
# volume quota), and the quota an Access-Request asks to reserve (seconds; bytes).
TARIFA_AAA_PREPAID_USAGE_TYPES = env_list("TARIFA_AAA_PREPAID_USAGE_TYPES", "data")
TARIFA_AAA_PREPAID_TIME = int(env("TARIFA_AAA_PREPAID_TIME", "3600"))
TARIFA_AAA_PREPAID_BYTES = int(env("TARIFA_AAA_PREPAID_BYTES", str(1_000_000_000)))

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "procrastinate.contrib.django",
    "tarifa.kernel",
    "tarifa.audit",
    "tarifa.identity",
    "tarifa.branches",
    "tarifa.federation",
    "tarifa.crm",
    "tarifa.ledger",
    "tarifa.catalog",
    "tarifa.inventory",
    "tarifa.subscriptions",
    "tarifa.rating",
    "tarifa.charging",
    "tarifa.aaa",
    "tarifa.billing",
    "tarifa.payments",
    "tarifa.releases",
    "tarifa.journals",
    "tarifa.interbranch",
    "tarifa.scripts",
    "tarifa.integrations",
    "tarifa.tickets",
    "tarifa.reports",
    "tarifa.portal",
    "tarifa.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "tarifa.web.middleware.RequestGuardMiddleware",  # before CSRF: it refuses bodies CSRF would read
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "tarifa.web.middleware.RequestContextMiddleware",
    "tarifa.web.timeouts.StatementTimeoutMiddleware",
]

ROOT_URLCONF = "tarifa.urls"
WSGI_APPLICATION = "tarifa.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tarifa.web.context.navigation",
            ],
            # {{ amount|money:currency }}, |duration, |data_size, |yes_no in every template
            "builtins": ["tarifa.web.templatetags.units"],
        },
    },
]


def _database_url():
    if TESTING and env("TEST_DATABASE_URL"):
        return env("TEST_DATABASE_URL")
    if env("DATABASE_URL"):
        return env("DATABASE_URL")
    from tarifa.kernel.embedded import database_url

    url = database_url()
    os.environ["DATABASE_URL"] = url  # child processes (server, workers) share it
    # The embedded installation (someone trying Tarifa) has the built-in TEST card provider on,
    # in this process and its children (which see DATABASE_URL set).
    os.environ.setdefault("TARIFA_TEST_CARD_PROVIDER", "1")
    return url


DATABASES = {"default": dj_database_url.parse(_database_url(), conn_max_age=int(env("TARIFA_CONN_MAX_AGE", "60")))}
DATABASES["default"]["TEST"] = {"NAME": env("TARIFA_TEST_DATABASE_NAME", "test_tarifa")}
# The built-in TEST card provider (payments/gateways/testcards.py): a hosted payment page served by
# Tarifa itself, so that card payments work end to end without a real provider. On by default for
# the embedded database (set above), DEBUG and tests; a production installation switches it on
# explicitly (TARIFA_TEST_CARD_PROVIDER=1), e.g. for a staging server.
TARIFA_TEST_CARD_PROVIDER = env_bool("TARIFA_TEST_CARD_PROVIDER", DEBUG or TESTING)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "identity.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "web:login"
LOGIN_REDIRECT_URL = "web:dashboard"
LOGOUT_REDIRECT_URL = "web:login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("TARIFA_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
FORMAT_MODULE_PATH = ["tarifa.web.formats"]  # one date format: Y-m-d H:i

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns about a missing directory otherwise
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_ROOT = Path(env("TARIFA_MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
DATA_UPLOAD_MAX_MEMORY_SIZE = int(env("TARIFA_MAX_UPLOAD_BYTES", str(10 * 1024 * 1024)))
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
TARIFA_MAX_UPLOAD_BYTES = DATA_UPLOAD_MAX_MEMORY_SIZE
# Usage files and bank statements have their own limits (docs/operations.md, "Upload limits"):
# checked on the request's length before the body is read. Larger usage files: `tarifa usage import`.
TARIFA_MAX_USAGE_FILE_BYTES = int(env("TARIFA_MAX_USAGE_FILE_BYTES", str(50 * 1024 * 1024)))
TARIFA_MAX_STATEMENT_FILE_BYTES = int(env("TARIFA_MAX_STATEMENT_FILE_BYTES", str(5 * 1024 * 1024)))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tarifa.web.api_auth.BearerTokenAuthentication",
        "tarifa.web.api_auth.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["tarifa.web.api_auth.ModelPermission"],
    "DEFAULT_PAGINATION_CLASS": "tarifa.web.api_auth.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "tarifa.web.filters.FilterBackend",
        "tarifa.web.filters.Ordering",
        "rest_framework.filters.SearchFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "tarifa.web.schema.AutoSchema",
    "EXCEPTION_HANDLER": "tarifa.web.api.exception_handler",
    # Drops nested records the caller may not view (tarifa.web.api_nesting).
    "DEFAULT_RENDERER_CLASSES": ["tarifa.web.api_nesting.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["tarifa.web.parsers.JSONParser", "tarifa.web.parsers.MultiPartParser"],
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tarifa API",
    "DESCRIPTION": "Business support system for telecom operators and ISPs.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Served from the vendored drf-spectacular-sidecar package: no CDN at run time.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The staff API's schema: /api/v1/ only (the portal API has its own, tarifa.portal.api).
    "PREPROCESSING_HOOKS": ["tarifa.web.schema.staff_api_only"],
    # Every operation's error answers and its Idempotency-Key header (tarifa.web.schema).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "tarifa.web.schema.document_errors"],
}

# Seconds a web request's query may run (0: no limit); longer work runs as a background task.
TARIFA_REQUEST_STATEMENT_TIMEOUT = float(env("TARIFA_REQUEST_STATEMENT_TIMEOUT", "30"))
# A list's CSV export above this many rows runs as a background task (a file to download).
TARIFA_EXPORT_IN_REQUEST_MAX_ROWS = int(env("TARIFA_EXPORT_IN_REQUEST_MAX_ROWS", "20000"))

# Operator scripts (docs/scripts.md): Lua in sandbox processes. A run may use TARIFA_SCRIPT_CPU_MS of
# CPU time and TARIFA_SCRIPT_MEMORY bytes of Lua memory; the process is killed when it has not
# answered within 4 × the budget + TARIFA_SCRIPT_GRACE_MS of its own time, and its address space is
# limited to TARIFA_SCRIPT_PROCESS_MEMORY. TARIFA_SCRIPT_POOL_SIZE processes wait started per web or
# worker process.
TARIFA_SCRIPT_CPU_MS = int(env("TARIFA_SCRIPT_CPU_MS", "1000"))
TARIFA_SCRIPT_MEMORY = int(env("TARIFA_SCRIPT_MEMORY", str(32 * 1024 * 1024)))
TARIFA_SCRIPT_GRACE_MS = int(env("TARIFA_SCRIPT_GRACE_MS", "2000"))
TARIFA_SCRIPT_PROCESS_MEMORY = int(env("TARIFA_SCRIPT_PROCESS_MEMORY", str(512 * 1024 * 1024)))
TARIFA_SCRIPT_POOL_SIZE = int(env("TARIFA_SCRIPT_POOL_SIZE", "2"))
TARIFA_SCRIPT_MAX_RUNS_PER_PROCESS = int(env("TARIFA_SCRIPT_MAX_RUNS_PER_PROCESS", "500"))
# The system user the sandbox processes run as (e.g. nobody; Tarifa must run as root to switch):
# empty, Tarifa's own user. It needs to read Python and the installed packages.
TARIFA_SCRIPT_USER = env("TARIFA_SCRIPT_USER", "")

PROCRASTINATE_ON_APP_READY = "tarifa.web.jobs.on_app_ready"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("TARIFA_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "procrastinate": {"level": env("TARIFA_JOBS_LOG_LEVEL", "WARNING")},
        # PDF rendering: fontTools logs every subset table and WeasyPrint every step at INFO
        # (hundreds of lines per invoice); their warnings and errors still show.
        "fontTools": {"level": env("TARIFA_PDF_LOG_LEVEL", "WARNING")},
        "weasyprint": {"level": env("TARIFA_PDF_LOG_LEVEL", "WARNING")},
    },
}

# Outgoing e-mail (customer notifications). Without TARIFA_EMAIL_HOST nothing is sent: messages
# go to the local outbox (Operations › Local outbox; docs/notifications.md).
EMAIL_HOST = env("TARIFA_EMAIL_HOST", "")
EMAIL_PORT = int(env("TARIFA_EMAIL_PORT", "25"))
EMAIL_HOST_USER = env("TARIFA_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("TARIFA_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("TARIFA_EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("TARIFA_EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = int(env("TARIFA_EMAIL_TIMEOUT", "15"))  # a silent server is an attempt failed, not a hung job
DEFAULT_FROM_EMAIL = env("TARIFA_NOTIFY_FROM_EMAIL", "billing@localhost")

AUTHENTICATION_BACKENDS = ["tarifa.identity.backends.RoleBackend"]
