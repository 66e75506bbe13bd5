"""Media downloads: Twilio (basic auth) and the Cloud API (two steps, bearer token)."""

import pytest
import requests
import responses
from django.core.files.storage import default_storage

from channels_app.tasks import download_attachment
from conversations.models import MessageAttachment
from conversations.services.media import MAX_DOWNLOAD_ATTEMPTS
from tests import factories

pytestmark = pytest.mark.django_db

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 2048


def attachment_for(channel, **fields):
    message = factories.MessageFactory(
        thread=factories.ThreadFactory(channel=channel), kind="image"
    )
    return MessageAttachment.objects.create(message=message, media_type="image", **fields)


@responses.activate
def test_twilio_media_is_stored_with_size_and_type(tenant):
    # given
    channel = factories.TwilioChannelFactory(tenant=tenant)
    url = "https://api.twilio.test/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"
    attachment = attachment_for(channel, url=url, content_type="image/jpeg")
    responses.get(url, body=JPEG, content_type="image/jpeg")

    # when
    assert download_attachment.apply(args=[str(attachment.pk)]).get() == "stored"

    # then
    attachment.refresh_from_db()
    assert (attachment.download_status, attachment.size_bytes) == ("stored", len(JPEG))
    assert attachment.file.name.endswith(".jpg")
    with default_storage.open(attachment.file.name) as stored:
        assert stored.read() == JPEG
    auth = responses.calls[0].request.headers["Authorization"]
    assert auth.startswith("Basic ")


@responses.activate
def test_cloud_api_media_is_fetched_in_two_steps(tenant):
    channel = factories.CloudChannelFactory(tenant=tenant)
    attachment = attachment_for(channel, provider_media_id="1003383421387256", content_type="")
    responses.get(
        "https://graph.facebook.test/v22.0/1003383421387256",
        json={
            "messaging_product": "whatsapp",
            "url": "https://lookaside.fbsbx.test/whatsapp_business/attachments/?mid=1003",
            "mime_type": "image/jpeg",
            "sha256": "abc",
            "file_size": len(JPEG),
            "id": "1003383421387256",
        },
    )
    responses.get(
        "https://lookaside.fbsbx.test/whatsapp_business/attachments/?mid=1003",
        body=JPEG,
        content_type="application/octet-stream",
    )
    assert download_attachment.apply(args=[str(attachment.pk)]).get() == "stored"
    attachment.refresh_from_db()
    assert (attachment.content_type, attachment.size_bytes) == ("image/jpeg", len(JPEG))
    assert all(
        call.request.headers["Authorization"] == "Bearer EAAG-test-token"
        for call in responses.calls
    )


@responses.activate
def test_failed_download_retries_then_is_marked_failed(tenant):
    channel = factories.TwilioChannelFactory(tenant=tenant)
    url = "https://api.twilio.test/media/ME404"
    attachment = attachment_for(channel, url=url)
    responses.get(url, status=503)
    responses.get(url, body=requests.ConnectionError("reset"))

    download_attachment.apply(args=[str(attachment.pk)])

    attachment.refresh_from_db()
    assert attachment.download_status == "failed"
    assert attachment.download_attempts == MAX_DOWNLOAD_ATTEMPTS
    assert not attachment.file


@responses.activate
def test_a_stored_attachment_is_not_fetched_again(tenant):
    channel = factories.TwilioChannelFactory(tenant=tenant)
    attachment = attachment_for(channel, url="https://x.test/m", download_status="stored")
    assert download_attachment.apply(args=[str(attachment.pk)]).get() == "stored"
    assert len(responses.calls) == 0


@responses.activate
@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "https://evil.test/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
        "file:///etc/passwd",
    ],
)
def test_twilio_media_off_the_api_host_is_refused_without_a_request(tenant, url):
    # given: a media URL that whoever can sign the channel's webhooks could have chosen
    channel = factories.TwilioChannelFactory(tenant=tenant)
    attachment = attachment_for(channel, url=url)

    # when
    download_attachment.apply(args=[str(attachment.pk)])

    # then: nothing fetched, and failed at once (another attempt cannot help)
    assert len(responses.calls) == 0
    attachment.refresh_from_db()
    assert (attachment.download_status, attachment.download_attempts) == ("failed", 1)
