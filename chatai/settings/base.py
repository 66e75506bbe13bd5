"""Settings read from the environment (django-environ; a `.env` file is honoured).

With no environment at all the project runs on the embedded default: SQLite, a local memory
cache and in-process tasks. With `DEBUG` off, the secrets named in the contract are required
and start-up stops with a message naming the missing variable.
"""

import base64
import hashlib
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)


def _required(name: str, dev_default: str) -> str:
    """Return the variable, its dev-only default when DEBUG is on, or stop start-up."""
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(
        f"The environment variable {name} is required when DEBUG is off. "
        "See the Configuration section of the README."
    )


def _derived_key(label: str, secret: str) -> str:
    digest = hashlib.sha256(f"chatai-dev:{label}:{secret}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


SECRET_KEY = _required("SECRET_KEY", "dev-only-insecure-secret-key-change-me-0123456789abcdef")
PII_ENCRYPTION_KEYS = [
    key.strip()
    for key in (
        env.str("PII_ENCRYPTION_KEYS", default="") or env.str("PII_ENCRYPTION_KEY", default="")
    ).split(",")
    if key.strip()
]
if not PII_ENCRYPTION_KEYS:
    PII_ENCRYPTION_KEYS = [_required("PII_ENCRYPTION_KEYS", _derived_key("pii", SECRET_KEY))]
PII_LOOKUP_KEY = _required("PII_LOOKUP_KEY", _derived_key("lookup", SECRET_KEY))

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://localhost:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[PUBLIC_BASE_URL])
# The JSON error envelope for /api/ paths; Django's page for the admin.
CSRF_FAILURE_VIEW = "core.api_base.csrf_failure"

INSTALLED_APPS = [
    "chatai.apps.ChataiAdminConfig",
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
    "csp",
    "django_htmx",
    "axes",
    "django_prometheus",
    "core",
    "tenants",
    "channels_app",
    "conversations",
    "flows",
    "integrations",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
    "core.middleware_db.DatabaseUnavailableMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "chatai.urls"
WSGI_APPLICATION = "chatai.wsgi.application"
ASGI_APPLICATION = "chatai.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", 5)
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the dev server, the in-process tasks and a shell share the file.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 20)
    DATABASES["default"]["OPTIONS"].setdefault(
        "init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    )
USING_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache: Redis when configured, local memory otherwise ------------------------------------
REDIS_URL = env.str("REDIS_URL", default="") or env.str("REDIS_CONN_URL", default="")
_LOCAL_CACHE = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "chatai"}
if REDIS_URL:
    CACHES = {
        # Falls back to local memory while Redis is unreachable (see core/cache.py).
        "default": {
            "BACKEND": "core.cache.FallbackCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"PRIMARY": "redis", "FALLBACK": "local"},
        },
        "redis": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
            },
        },
        "local": {**_LOCAL_CACHE, "LOCATION": "chatai-fallback"},
    }
else:
    CACHES = {"default": _LOCAL_CACHE}
    # Without Redis, lockout counters are per process by design (the embedded default);
    # axes warns about a local memory cache, which is exactly what we chose here.
    SILENCED_SYSTEM_CHECKS = ["axes.W001"]

# --- Celery: a Redis broker for web + worker deployments, in-process otherwise ---------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "process-pending": {"task": "conversations.tasks.process_pending", "schedule": 60.0},
    "process-flow-timeouts": {"task": "flows.tasks.process_flow_timeouts", "schedule": 30.0},
    "send-due-webhooks": {"task": "integrations.tasks.send_due_webhooks", "schedule": 30.0},
}
# Message templates are synced from the providers this often (seconds; 0: only on demand, by
# `manage.py sync_templates`, the admin's button or the API).
TEMPLATES_SYNC_SECONDS = env.float("TEMPLATES_SYNC_SECONDS", default=6 * 3600.0)
if TEMPLATES_SYNC_SECONDS > 0:
    CELERY_BEAT_SCHEDULE["sync-templates"] = {
        "task": "channels_app.tasks.sync_templates",
        "schedule": TEMPLATES_SYNC_SECONDS,
    }
# The sandbox provider (demos: nothing is sent, statuses advance by themselves) works only with
# DEBUG on or this set; production can neither create nor send through a sandbox channel.
SANDBOX_PROVIDER_ENABLED = env.bool("SANDBOX_PROVIDER_ENABLED", default=False)
if DEBUG or SANDBOX_PROVIDER_ENABLED:
    CELERY_BEAT_SCHEDULE["sandbox-statuses"] = {
        "task": "channels_app.tasks.advance_sandbox_statuses",
        "schedule": 1.0,
    }
# Without a broker, server processes run the beat schedule themselves (core/scheduler.py), with
# flow timeouts every 2 s instead of 30 so that a short timeout fires on time.
EMBEDDED_SCHEDULER = env.bool("EMBEDDED_SCHEDULER", default=True)
EMBEDDED_SCHEDULER_TICK_SECONDS = 1.0
EMBEDDED_SCHEDULE_SECONDS = {"process-flow-timeouts": 2.0}
# Jobs whose first embedded run is a full interval after start, not one tick: the template
# sync calls the providers for every channel (in every web worker) and holds up the flow
# timeouts while it runs.
EMBEDDED_SCHEDULE_DELAYED = frozenset({"sync-templates"})

# --- Auth, sessions, lockout ----------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_COOKIE_AGE = 24 * 60 * 60
SESSION_ENGINE = "django.contrib.sessions.backends.db"
# The admin login is the one login page.
LOGIN_URL = "admin:login"
# Messages live in the session, not in a cookie: some carry what is shown once (a new API
# key, an invitation link), and Django's cookie storage only signs, it does not encrypt.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
LOGIN_REDIRECT_URL = "admin:index"

# Failed logins (admin and API) are counted per username at an address and per address, each
# with its own limit (core/lockout.py): a username is locked out only at the address that
# failed, so nobody elsewhere can lock a staff member out; an address trying many usernames is
# stopped at the higher address limit.
AXES_HANDLER = "core.lockout.LoginLockoutHandler"
AXES_CACHE = "default"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)  # per username at an address
AXES_IP_FAILURE_LIMIT = env.int("AXES_IP_FAILURE_LIMIT", default=50)  # per address
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)  # hours
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False
# The client address for the lockout: REMOTE_ADDR, or behind TRUSTED_PROXY_COUNT proxies the
# address the outermost one saw (core.net.client_ip). Without it everyone behind the proxy
# would share one address, and a few failed logins would lock every staff member out.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "core.net.client_ip"

# --- Internationalisation, static, media -----------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- REST framework and OpenAPI ---------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.authentication.TenantAPIKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # The API speaks JSON (the flow upload also takes a multipart file); a form post is a 415.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "core.api_base.ChataiAutoSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "chatai API",
    "DESCRIPTION": "Tenant API of chatai, the WhatsApp inbox automation service.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ThreadStatusEnum": "conversations.models.ThreadStatus",
        "MessageStatusEnum": "conversations.models.MessageStatus",
        "InvitationStatusEnum": "tenants.models.InvitationStatus",
        "WebhookEventEnum": "integrations.models.WebhookEvent",
        "WebhookDeliveryStatusEnum": "integrations.models.DeliveryStatus",
    },
    # Swagger UI would otherwise send the schema's URL to validator.swagger.io for a badge.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}

# --- Content-Security-Policy (django-csp), on every response -----------------------------------
# Everything the pages load comes from this origin: the admin's, the browsable API's and Swagger
# UI's scripts and styles are static files (Swagger UI's from the sidecar, its start-up script
# served by /api/docs/?script, see chatai/api_urls.py). No inline or eval'd script, no inline
# <style> and no inline style attribute runs anywhere, with one exception below;
# tests/browser/test_csp.py walks the pages in Chromium and fails on any violation.


def _style_attribute_hash(declarations: str) -> str:
    digest = hashlib.sha256(declarations.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # The exception: the browsable API's templates (DRF's) set a few fixed style
        # attributes (floated buttons, the borders of nested fieldsets, the search box's width).
        # Exactly these values are allowed ('unsafe-hashes' lets a hash match an attribute);
        # any other inline style is refused. tests/test_csp.py fails if DRF's templates use a
        # value not listed here.
        "style-src-attr": [
            "'unsafe-hashes'",
            *(
                _style_attribute_hash(declarations)
                for declarations in (
                    "float: right; margin-right: 10px",
                    "float: right",
                    "border-bottom: 1px solid #e5e5e5",
                    "border-bottom: 0",
                    "width: 350px",
                )
            ),
        ],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}

# --- Providers and AI -------------------------------------------------------------------------
# The installed channel providers (dotted paths of `channels_app.providers.base.Provider`
# subclasses, see channels_app/providers/registry.py): one line per provider.
CHANNEL_PROVIDERS = env.list(
    "CHANNEL_PROVIDERS",
    default=[
        "channels_app.providers.twilio.TwilioProvider",
        "channels_app.providers.cloud_api.CloudApiProvider",
        "channels_app.providers.sandbox.SandboxProvider",
        "channels_app.providers.instagram.InstagramProvider",
    ],
)
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_API_BASE_URL = env.str("TWILIO_API_BASE_URL", default="https://api.twilio.com").rstrip("/")
# Twilio's Content API (message templates: Content SIDs and their WhatsApp approvals).
TWILIO_CONTENT_API_URL = env.str(
    "TWILIO_CONTENT_API_URL", default="https://content.twilio.com"
).rstrip("/")
META_APP_SECRET = env.str("META_APP_SECRET", default="")
META_VERIFY_TOKEN = env.str("META_VERIFY_TOKEN", default="")
WHATSAPP_GRAPH_API_URL = env.str(
    "WHATSAPP_GRAPH_API_URL", default="https://graph.facebook.com/v22.0"
).rstrip("/")
# Where Instagram replies go (the Instagram API with Instagram Login's Graph host, versioned).
INSTAGRAM_GRAPH_API_URL = env.str(
    "INSTAGRAM_GRAPH_API_URL", default="https://graph.instagram.com/v22.0"
).rstrip("/")
PROVIDER_HTTP_TIMEOUT_SECONDS = env.float("PROVIDER_HTTP_TIMEOUT_SECONDS", default=10.0)

LLM_PROVIDER = env.str("LLM_PROVIDER", default="none").lower()
LLM_MODEL = env.str("LLM_MODEL", default="")
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
GOOGLE_API_KEY = env.str("GOOGLE_API_KEY", default="")
# Webhooks to tenants' systems go to https URLs on public addresses only, checked at every send
# (integrations, core.outbound_http); true lifts that for tests and private deployments.
OUTBOUND_WEBHOOKS_ALLOW_PRIVATE = env.bool("OUTBOUND_WEBHOOKS_ALLOW_PRIVATE", default=False)
LLM_TIMEOUT_SECONDS = env.float("LLM_TIMEOUT_SECONDS", default=20.0)

ADMIN_USERNAME = env.str("ADMIN_USERNAME", default="admin")
ADMIN_PASSWORD = env.str("ADMIN_PASSWORD", default="")
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Multiprocess metrics (see core/prometheus_multiprocess.py): every process writes its values
# there from its first metric on, so the directory must exist before any app is loaded.
if PROMETHEUS_MULTIPROC_DIR := env.str("PROMETHEUS_MULTIPROC_DIR", default=""):
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)

# --- Logging: one JSON object per line, with request id and tenant id, never PII ---------------
LOG_FORMAT = env.str("LOG_FORMAT", default="console" if DEBUG else "json")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "core.logging.ContextFilter"}},
    "formatters": {
        "json": {"()": "core.logging.JsonFormatter"},
        "console": {"()": "core.logging.ConsoleFormatter"},
    },
    "handlers": {
        "default": {
            "class": "logging.StreamHandler",
            "filters": ["context"],
            "formatter": LOG_FORMAT if LOG_FORMAT in ("json", "console") else "json",
        },
    },
    "root": {"handlers": ["default"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "django.request": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "twilio.http_client": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},
    },
}
