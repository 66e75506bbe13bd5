"""SQL statements per message, counted in-process on the benchmark's database.

Usage: python bench/statements.py TARGET REQUESTS_FILE PATH COUNT
Replays the last COUNT pre-built requests of the file (never sent by wrk, which starts at the
top) through Django's test client and counts every statement from the request's start to its
end: with a broker (CELERY_BROKER_URL set) the acknowledge path; without, the whole pipeline
(stored, flow step, replies stored and sent to the stand-in). Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
warnings.filterwarnings("ignore", message="No directory at")  # collectstatic is not run
django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from conversations.models import Message  # noqa: E402


def main() -> None:
    target, requests_file, path, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    lines = Path(requests_file).read_text().splitlines()[-count:]
    client = Client(HTTP_HOST="127.0.0.1")
    counts, failures = [], 0
    sent_before = Message.objects.filter(direction="outbound", status="sent").count()
    for line in lines:
        signature, body = line.split("\t", 1)
        with CaptureQueriesContext(connection) as queries:
            response = client.post(
                path,
                data=body,
                content_type="application/x-www-form-urlencoded",
                HTTP_X_TWILIO_SIGNATURE=signature,
            )
        failures += response.status_code != 200
        counts.append(len(queries.captured_queries))
    sent = Message.objects.filter(direction="outbound", status="sent").count() - sent_before
    print(
        json.dumps(
            {
                "target": target,
                "messages": len(counts),
                "failures": failures,
                "statements_mean": sum(counts) / max(len(counts), 1),
                "statements_max": max(counts, default=0),
                "replies_sent": sent,
            }
        )
    )


if __name__ == "__main__":
    main()
