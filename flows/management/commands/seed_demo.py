import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from channels_app.models import ChannelInstance, Provider
from channels_app.services import channel_create
from flows.models import Flow
from flows.services import flow_create
from tenants.models import Tenant
from tenants.services import tenant_create

DEMO_SLUG = "demo-fitness"
DEMO_IDENTIFIER = "whatsapp:+15550000001"
DEMO_PHONE = "+15550000001"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fitness-welcome.json"
DEMO_CONFIG = {
    "business_description": (
        "Demo Fitness Studio: a neighbourhood gym with group classes from 6am to 10pm, "
        "a free trial class for newcomers and monthly memberships from 39."
    ),
    "target_audience": "Adults who want to start or keep a training routine",
    "communication_style": "Friendly, encouraging and brief",
    "language": "en",
}


class Command(BaseCommand):
    help = (
        "Create the demo tenant (with project config), its Twilio channel "
        f"{DEMO_IDENTIFIER} and the fitness example flow. Idempotent: running it again "
        "changes nothing."
    )

    @transaction.atomic
    def handle(self, *args: object, **options: object) -> None:
        try:
            definition = json.loads(EXAMPLE.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read the example flow {EXAMPLE}: {exc}") from None

        tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
        if tenant is None:
            tenant = tenant_create(
                name="Demo Fitness Studio",
                slug=DEMO_SLUG,
                owner_name="Demo Owner",
                owner_email="owner@demo-fitness.example",
                config=DEMO_CONFIG,
            )
            self.stdout.write(f"Created tenant {tenant.slug} ({tenant.pk}).")
        else:
            self.stdout.write(f"Tenant {tenant.slug} exists ({tenant.pk}).")

        channel = ChannelInstance.objects.filter(identifier=DEMO_IDENTIFIER).first()
        if channel is None:
            channel = channel_create(
                tenant=tenant,
                provider=Provider.TWILIO,
                identifier=DEMO_IDENTIFIER,
                phone_number=DEMO_PHONE,
            )
            self.stdout.write(f"Created channel {channel.identifier} ({channel.pk}).")
        elif channel.tenant_id != tenant.pk:
            raise CommandError(
                f"Channel {DEMO_IDENTIFIER} already belongs to another tenant; not touching it."
            )
        else:
            self.stdout.write(f"Channel {channel.identifier} exists ({channel.pk}).")

        latest = (
            Flow.objects.filter(channel=channel, flow_id=definition.get("flow_id"))
            .order_by("-version")
            .first()
        )
        if latest is not None and latest.definition == definition:
            self.stdout.write(f"Flow {latest.flow_id} v{latest.version} is up to date.")
            return
        flow = flow_create(tenant=tenant, channel=channel, definition=definition)
        self.stdout.write(f"Loaded flow {flow.flow_id} v{flow.version} (active).")
