"""Start-up configuration: the embedded default, and refusal without secrets when DEBUG is off."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_settings(env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    base = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "chatai.settings.production",
    }
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_embedded_default_runs_on_sqlite_local_cache_in_process_tasks(tmp_path):
    result = run_settings(
        {"DEBUG": "true"},
        "from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CACHES['default']['BACKEND'], "
        "s.CELERY_TASK_ALWAYS_EAGER)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "django.core.cache.backends.locmem.LocMemCache",
        "True",
    ]


@pytest.mark.parametrize("missing", ["SECRET_KEY", "PII_ENCRYPTION_KEYS", "PII_LOOKUP_KEY"])
def test_start_up_refuses_a_missing_secret_when_debug_is_off(missing):
    env = {
        "DEBUG": "false",
        "SECRET_KEY": "x" * 60,
        "PII_ENCRYPTION_KEYS": "fyBY6kCqRcT6DQQxRC5fJVrO5rRiZfPm3qNQeLuMiY8=",
        "PII_LOOKUP_KEY": "lookup",
    }
    del env[missing]
    result = run_settings(env, "print('started')")
    assert result.returncode != 0
    assert missing in result.stderr
    assert "started" not in result.stdout


def test_single_pii_encryption_key_is_accepted():
    result = run_settings(
        {
            "DEBUG": "false",
            "SECRET_KEY": "x" * 60,
            "PII_ENCRYPTION_KEY": "fyBY6kCqRcT6DQQxRC5fJVrO5rRiZfPm3qNQeLuMiY8=",
            "PII_LOOKUP_KEY": "lookup",
        },
        "from django.conf import settings as s; print(len(s.PII_ENCRYPTION_KEYS))",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


def test_redis_url_selects_redis_with_local_fallback():
    result = run_settings(
        {"DEBUG": "true", "REDIS_CONN_URL": "redis://127.0.0.1:6399/0"},
        "from django.conf import settings as s; print(s.CACHES['default']['BACKEND'])",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "core.cache.FallbackCache"
