"""Create the benchmark tenant, channel and flow, and pre-build signed Twilio requests.

Usage (settings from the environment, DJANGO_SETTINGS_MODULE=bench.settings):
    python bench/prepare.py OUT_DIR COUNT STANDIN_URL

Writes OUT_DIR/<target>.txt with one request per line: `signature<TAB>form body`. Every
request has its own MessageSid and sender, so no delivery is a duplicate of another and each
one starts a new conversation (the fitness flow answers it with two messages).
"""

import json
import os
import sys
from pathlib import Path
from urllib.parse import urlencode

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

from bench.urls import TABLE_SQL  # noqa: E402
from channels_app.models import ChannelInstance  # noqa: E402
from flows.services import flow_create  # noqa: E402
from tenants.models import Tenant  # noqa: E402

CHANNEL_NUMBER = "+15557770001"
TOKEN = "bench-auth-token"
SID = "ACbe000000000000000000000000000000"
FLOW = Path(__file__).resolve().parent.parent / "flows" / "examples" / "fitness-welcome.json"
if not FLOW.exists():
    FLOW = Path("/work/shared/examples/flows/fitness-welcome.json")


def setup(standin_url: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(TABLE_SQL)
        cursor.execute("TRUNCATE bench_baseline")
    tenant, _ = Tenant.objects.get_or_create(slug="bench", defaults={"name": "Bench Fitness"})
    channel = ChannelInstance.objects.filter(identifier=f"whatsapp:{CHANNEL_NUMBER}").first()
    if channel is None:
        channel = ChannelInstance.objects.create(
            tenant=tenant,
            provider="twilio",
            identifier=f"whatsapp:{CHANNEL_NUMBER}",
            phone_number=CHANNEL_NUMBER,
        )
    channel.settings = {"api_base_url": standin_url}
    channel.secrets = {"account_sid": SID, "auth_token": TOKEN}
    channel.save()
    if not channel.flows.filter(is_active=True).exists():
        flow_create(tenant=tenant, channel=channel, definition=json.loads(FLOW.read_text()))


def build(
    out: Path, target: str, path: str, count: int, offset: int, senders: int = 0, skip: int = 0
) -> None:
    """`senders` > 0: that many contacts write in turn (an ongoing conversation for each);
    0: every request comes from a new contact. `skip` starts later in the same sequence."""
    validator = RequestValidator(TOKEN)
    url = f"{settings.PUBLIC_BASE_URL}{path}"
    lines = []
    for n in range(offset + skip, offset + skip + count):
        sender = f"+1999{(offset + (n - offset) % senders) if senders else n:08d}"
        params = {
            "SmsMessageSid": f"SMbench{n:025d}",
            "NumMedia": "0",
            "ProfileName": f"Bench {sender[-8:]}",  # a contact keeps its name
            "MessageType": "text",
            "SmsSid": f"SMbench{n:025d}",
            "WaId": sender.lstrip("+"),
            "SmsStatus": "received",
            "Body": "Hello",
            "To": f"whatsapp:{CHANNEL_NUMBER}",
            "NumSegments": "1",
            "MessageSid": f"SMbench{n:025d}",
            "AccountSid": SID,
            "From": f"whatsapp:{sender}",
            "ApiVersion": "2010-04-01",
        }
        signature = validator.compute_signature(url, params)
        lines.append(f"{signature}\t{urlencode(params)}")
    (out / f"{target}.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    out_dir, count, standin = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    out_dir.mkdir(parents=True, exist_ok=True)
    setup(standin)
    # distinct senders and sids per target, so targets never see each other's messages
    build(out_dir, "baseline", "/bench/baseline", count, 0)
    build(out_dir, "ack", "/api/webhooks/whatsapp", count, 1_000_000)
    # the first message of each of 500 contacts (sent before measuring), then their next ones
    build(out_dir, "ack_known_warm", "/api/webhooks/whatsapp", 500, 3_000_000, senders=500)
    build(out_dir, "ack_known", "/api/webhooks/whatsapp", count, 3_000_000, 500, skip=500)
    build(out_dir, "pipeline", "/api/webhooks/whatsapp", count, 2_000_000)
    # new contacts for the pipeline with a Celery worker (bench/latency.py sends them)
    build(out_dir, "worker", "/api/webhooks/whatsapp", count, 4_000_000)
    print(f"prepared {count} signed requests per target in {out_dir}")
