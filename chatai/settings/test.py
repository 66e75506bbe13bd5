"""Settings for the test suite: the base settings with fixed keys and fast hashing.

`DATABASE_URL` and `REDIS_URL` still apply, so the same suite runs on SQLite and on PostgreSQL.
"""

import os

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdefghij")
os.environ.setdefault("PII_ENCRYPTION_KEYS", "fyBY6kCqRcT6DQQxRC5fJVrO5rRiZfPm3qNQeLuMiY8=")
os.environ.setdefault("PII_LOOKUP_KEY", "test-lookup-key")
os.environ.setdefault("PUBLIC_BASE_URL", "https://chatai.example.com")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1,chatai.example.com")
os.environ.setdefault("LOG_FORMAT", "json")
for _name in ("CELERY_BROKER_URL", "LLM_PROVIDER", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
    os.environ.pop(_name, None)

# Each pytest-xdist worker gets a Redis database of its own (8, 9, ...): a test that clears the
# cache (FLUSHDB) or bumps a shared stamp must not empty its sibling's memos mid-test.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
_redis_url = os.environ.get("REDIS_URL") or os.environ.get("REDIS_CONN_URL") or ""
if _redis_url and _worker.startswith("gw") and _worker[2:].isdigit():
    from urllib.parse import urlsplit, urlunsplit

    _parts = urlsplit(_redis_url)
    _database = 8 + int(_worker[2:]) % 8
    os.environ["REDIS_URL"] = urlunsplit(_parts._replace(path=f"/{_database}"))
    os.environ.pop("REDIS_CONN_URL", None)

from .base import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
TWILIO_ACCOUNT_SID = "AC00000000000000000000000000000000"
TWILIO_AUTH_TOKEN = "test-twilio-default-token"
TWILIO_API_BASE_URL = "https://api.twilio.test"
TWILIO_CONTENT_API_URL = "https://content.twilio.test"
META_APP_SECRET = "test-meta-app-secret"
META_VERIFY_TOKEN = "test-verify-token"
WHATSAPP_GRAPH_API_URL = "https://graph.facebook.test/v22.0"
INSTAGRAM_GRAPH_API_URL = "https://graph.instagram.test/v22.0"
MEDIA_ROOT = BASE_DIR / ".test-media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
EMBEDDED_SCHEDULER = False  # tests drive core.scheduler synchronously
AXES_FAILURE_LIMIT = 3
AXES_IP_FAILURE_LIMIT = 8
