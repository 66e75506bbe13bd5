"""factory-boy factories for the models, built through the same services where it matters."""

import uuid

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from channels_app.models import ChannelInstance, ChannelTemplate, Provider
from conversations.models import ChatThread, Contact, Message, MessageStatus, Sender
from conversations.services.contacts import contact_external_id
from core.crypto import phone_lookup
from tenants.models import Tenant, TenantProjectConfig


class TenantFactory(DjangoModelFactory):
    class Meta:
        model = Tenant
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")
    owner_name = "Ana Souza"
    owner_email = factory.Sequence(lambda n: f"owner{n}@example.com")
    owner_phone = "+5511988887777"
    config = factory.RelatedFactory(
        "tests.factories.TenantProjectConfigFactory", factory_related_name="tenant"
    )


class TenantProjectConfigFactory(DjangoModelFactory):
    class Meta:
        model = TenantProjectConfig

    tenant = factory.SubFactory(TenantFactory, config=None)
    business_description = "A gym in São Paulo with classes all day."
    target_audience = "Adults who want to get fit"
    communication_style = "Friendly and brief"
    language = "en"


class TwilioChannelFactory(DjangoModelFactory):
    class Meta:
        model = ChannelInstance

    tenant = factory.SubFactory(TenantFactory)
    provider = Provider.TWILIO
    phone_number = factory.Sequence(lambda n: f"+1555{n:07d}")
    identifier = factory.LazyAttribute(lambda o: f"whatsapp:{o.phone_number}")
    settings = factory.LazyFunction(dict)
    secrets = factory.LazyFunction(
        lambda: {"account_sid": "AC11111111111111111111111111111111", "auth_token": "chan-token"}
    )


class CloudChannelFactory(DjangoModelFactory):
    class Meta:
        model = ChannelInstance

    tenant = factory.SubFactory(TenantFactory)
    provider = Provider.CLOUD_API
    phone_number = factory.Sequence(lambda n: f"+5511{n:09d}")
    identifier = factory.LazyAttribute(lambda o: f"whatsapp:{o.phone_number}")
    settings = factory.Sequence(lambda n: {"phone_number_id": f"10654035224{n:04d}"})
    secrets = factory.LazyFunction(lambda: {"access_token": "EAAG-test-token"})


class SandboxChannelFactory(DjangoModelFactory):
    """A sandbox channel (demos): works only with DEBUG or SANDBOX_PROVIDER_ENABLED."""

    class Meta:
        model = ChannelInstance

    tenant = factory.SubFactory(TenantFactory)
    provider = Provider.SANDBOX
    phone_number = factory.Sequence(lambda n: f"+1555{n + 5000000:07d}")
    identifier = factory.LazyAttribute(lambda o: f"whatsapp:{o.phone_number}")
    settings = factory.LazyFunction(dict)
    secrets = factory.LazyFunction(dict)


class ChannelTemplateFactory(DjangoModelFactory):
    """An approved Cloud API template with one body parameter (`Hi {{1}}, …`)."""

    class Meta:
        model = ChannelTemplate

    channel = factory.SubFactory(CloudChannelFactory)
    tenant = factory.LazyAttribute(lambda o: o.channel.tenant)
    name = factory.Sequence(lambda n: f"follow_up_{n}")
    language = "en_US"
    category = "UTILITY"
    status = "approved"
    body = "Hi {{1}}, we have news about your request."
    components = factory.LazyFunction(
        lambda: [{"type": "BODY", "text": "Hi {{1}}, we have news about your request."}]
    )
    parameters = factory.LazyFunction(lambda: [{"component": "body", "name": "1"}])
    synced_at = factory.LazyFunction(timezone.now)


class ContactFactory(DjangoModelFactory):
    class Meta:
        model = Contact

    tenant = factory.SubFactory(TenantFactory)
    phone = factory.Sequence(lambda n: f"+5521{n:09d}")
    name = factory.Sequence(lambda n: f"Customer {n}")
    phone_lookup = factory.LazyAttribute(lambda o: phone_lookup(o.phone))
    external_id = factory.LazyAttribute(lambda o: contact_external_id(o.phone))


class ThreadFactory(DjangoModelFactory):
    class Meta:
        model = ChatThread

    tenant = factory.SelfAttribute("channel.tenant")
    channel = factory.SubFactory(TwilioChannelFactory)
    contact = factory.SubFactory(ContactFactory, tenant=factory.SelfAttribute("..tenant"))


class MessageFactory(DjangoModelFactory):
    class Meta:
        model = Message

    thread = factory.SubFactory(ThreadFactory)
    tenant = factory.SelfAttribute("thread.tenant")
    channel = factory.SelfAttribute("thread.channel")
    direction = "inbound"
    text = factory.Sequence(lambda n: f"hello number {n}")
    status = MessageStatus.RECEIVED
    sender = Sender.CONTACT


class UserFactory(DjangoModelFactory):
    class Meta:
        model = "auth.User"
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.django.Password("pw-member-123456")


class MembershipFactory(DjangoModelFactory):
    """A user with a role in a tenant: `MembershipFactory(tenant=t, role=Role.AGENT)`."""

    class Meta:
        model = "tenants.TenantMembership"

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory)
    role = "agent"


class WebhookEndpointFactory(DjangoModelFactory):
    """An endpoint made without the services (no URL check, no DNS): for sweeps and fixtures."""

    class Meta:
        model = "integrations.WebhookEndpoint"

    tenant = factory.SubFactory(TenantFactory)
    url = "https://hooks.example.com/chatai"
    events = factory.LazyFunction(lambda: ["message.received"])
    secret = "whsec_test-secret-for-the-factory"


def webhook_with_delivery(tenant, delivery_id=None, **endpoint_fields):
    """An endpoint of `tenant` and one failed delivery with one attempt (nothing sent)."""
    from datetime import timedelta

    from django.utils import timezone

    from integrations.models import WebhookAttempt, WebhookDelivery

    endpoint = WebhookEndpointFactory(tenant=tenant, **endpoint_fields)
    now = timezone.now()
    delivery = WebhookDelivery.objects.create(
        id=delivery_id or uuid.uuid4(),
        tenant=tenant,
        endpoint=endpoint,
        event_id=uuid.uuid4(),
        event="message.received",
        occurred_at=now,
        payload={"message": {"id": str(uuid.uuid4())}},
        status="failed",
        attempts=1,
        give_up_at=now + timedelta(hours=24),
        last_status_code=500,
        last_error="http_status",
    )
    WebhookAttempt.objects.create(
        tenant=tenant, delivery=delivery, number=1, status_code=500, error="http_status"
    )
    return endpoint, delivery
