"""Benchmark settings: production settings plus a bare baseline view (bench/urls.py).

Only `make bench` uses this module; the production URL configuration stays clean.
"""

from chatai.settings.production import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
