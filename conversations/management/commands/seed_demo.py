import json
from dataclasses import replace
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from channels_app.models import ChannelInstance, Provider
from channels_app.providers import ParsedInbound, ParsedLocation, ParsedMedia
from channels_app.providers.sandbox import sandbox_enabled
from channels_app.services import channel_create, channel_update
from channels_app.templates import channel_templates_sync
from conversations.demo_history import demo_history_seed, history_exists
from conversations.services.inbound import message_receive
from core.tasks import in_process
from flows.models import Flow
from flows.services import flow_create
from tenants.models import Tenant
from tenants.services import tenant_create

DEMO_SLUG = "demo-fitness"
DEMO_IDENTIFIER = "whatsapp:+15550000001"
DEMO_PHONE = "+15550000001"
EXAMPLE = Path(__file__).resolve().parents[3] / "flows" / "examples" / "fitness-welcome.json"
DEMO_CONFIG = {
    "business_description": (
        "Demo Fitness Studio: a neighbourhood gym with group classes from 6am to 10pm, "
        "a free trial class for newcomers and monthly memberships from 39."
    ),
    "target_audience": "Adults who want to start or keep a training routine",
    "communication_style": "Friendly, encouraging and brief",
    "language": "en",
}
# The demo's customers write through the real inbound pipeline, with fixed provider ids: a
# second run finds every message already stored and changes nothing.
DEMO_CONVERSATIONS: tuple[tuple[str, str, tuple[ParsedInbound, ...]], ...] = (
    (
        "+15550100001",
        "Maria Silva",
        (
            ParsedInbound(provider_message_id="SBXseed-maria-1", from_phone="", text="hi"),
            ParsedInbound(provider_message_id="SBXseed-maria-2", from_phone="", text="other"),
            ParsedInbound(
                provider_message_id="SBXseed-maria-3",
                from_phone="",
                text="Can I talk to a human? I think I lost my locker key",
            ),
            ParsedInbound(
                provider_message_id="SBXseed-maria-4",
                from_phone="",
                kind="image",
                text="This is the key tag",
                media=(
                    ParsedMedia(
                        media_type="image",
                        content_type="image/png",
                        provider_media_id="sandbox-demo-photo",
                    ),
                ),
            ),
            ParsedInbound(
                provider_message_id="SBXseed-maria-5",
                from_phone="",
                kind="location",
                location=ParsedLocation(
                    latitude=38.7223,
                    longitude=-9.1393,
                    name="Demo Fitness Studio",
                    address="Main entrance",
                ),
            ),
        ),
    ),
    (
        "+15550100002",
        "Alex Chen",
        (
            ParsedInbound(provider_message_id="SBXseed-alex-1", from_phone="", text="hello"),
            ParsedInbound(provider_message_id="SBXseed-alex-2", from_phone="", text="prices"),
        ),
    ),
)


class Command(BaseCommand):
    help = (
        "Create the demo tenant (with project config), its channel "
        f"{DEMO_IDENTIFIER} on the sandbox provider (Twilio's number format, nothing sent), "
        "the fitness example flow and two conversations: one handed off to a person, with a "
        "photo and a location, and one in the flow. Idempotent: running it again changes "
        "nothing. Needs the sandbox (DEBUG or SANDBOX_PROVIDER_ENABLED)."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument(
            "--history",
            type=int,
            default=0,
            metavar="DAYS",
            help="Also play DAYS days of past contacts through the demo flow (0 to 90), once: "
            "the dashboard and the flow diagram then have numbers to show.",
        )

    def handle(self, *args: object, **options: object) -> None:
        history = options.get("history") or 0
        if not isinstance(history, int) or not 0 <= history <= 90:
            raise CommandError("--history takes a number of days from 0 to 90.")
        if not sandbox_enabled():
            raise CommandError(
                "seed_demo needs the sandbox provider: set DEBUG=true or "
                "SANDBOX_PROVIDER_ENABLED=true (never on a production server)."
            )
        # Tasks run here, after each commit, whatever CELERY_BROKER_URL says: the demo's
        # conversations are complete when the command returns.
        with in_process():
            channel = self._seed()
            if channel.provider == Provider.SANDBOX:  # its demo templates, for the inbox
                channel_templates_sync(channel=channel)
            self._seed_conversations(channel)
            if history:
                self._seed_history(channel, history)

    @transaction.atomic
    def _seed(self) -> ChannelInstance:
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
                provider=Provider.SANDBOX,
                identifier=DEMO_IDENTIFIER,
                phone_number=DEMO_PHONE,
            )
            self.stdout.write(f"Created channel {channel.identifier} ({channel.pk}).")
        elif channel.tenant_id != tenant.pk:
            raise CommandError(
                f"Channel {DEMO_IDENTIFIER} already belongs to another tenant; not touching it."
            )
        elif channel.provider == Provider.TWILIO and not channel.secrets:
            # An earlier demo's Twilio channel without credentials could never send.
            channel = channel_update(channel=channel, data={"provider": Provider.SANDBOX})
            self.stdout.write(f"Channel {channel.identifier} moved to the sandbox provider.")
        else:
            self.stdout.write(f"Channel {channel.identifier} exists ({channel.pk}).")

        latest = (
            Flow.objects.filter(channel=channel, flow_id=definition.get("flow_id"))
            .order_by("-version")
            .first()
        )
        if latest is not None and latest.definition == definition:
            self.stdout.write(f"Flow {latest.flow_id} v{latest.version} is up to date.")
            return channel
        flow = flow_create(tenant=tenant, channel=channel, definition=definition)
        self.stdout.write(f"Loaded flow {flow.flow_id} v{flow.version} (active).")
        return channel

    def _seed_history(self, channel: ChannelInstance, days: int) -> None:
        if channel.provider != Provider.SANDBOX:
            self.stdout.write("The demo channel is not a sandbox channel: no history.")
            return
        if history_exists(channel, timezone.now()):
            self.stdout.write("Demo history exists.")
            return
        played = demo_history_seed(channel=channel, days=days)
        self.stdout.write(f"Played {played} past conversations over {days} days.")

    def _seed_conversations(self, channel: ChannelInstance) -> None:
        """Each conversation's messages, received one by one (each commits and is processed
        before the next, as if typed); a message already stored is skipped."""
        if channel.provider != Provider.SANDBOX:
            self.stdout.write("The demo channel is not a sandbox channel: no conversations.")
            return
        total = 0
        for phone, name, messages in DEMO_CONVERSATIONS:
            created = 0
            for inbound in messages:
                _message, new = message_receive(
                    channel=channel,
                    inbound=replace(
                        inbound,
                        from_phone=phone,
                        profile_name=name,
                        wa_id=phone.lstrip("+"),
                        raw_type=inbound.kind,
                        timestamp=timezone.now(),
                    ),
                )
                created += int(new)
            if created:
                self.stdout.write(f"Seeded a conversation ({created} messages).")
            total += created
        if not total:
            self.stdout.write("Demo conversations exist.")
