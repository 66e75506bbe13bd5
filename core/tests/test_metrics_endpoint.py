"""/metrics: Prometheus text for the token holder or staff only, and the chatai instruments."""

import pytest
from prometheus_client import REGISTRY

from core import metrics


def _value(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer wrong-token",
        "Bearer ",
        "Basic c2VjcmV0LW1ldHJpY3MtdG9rZW4=",
        "secret-metrics-token",
    ],
)
def test_metrics_are_refused_without_the_token(client, settings, header):
    settings.METRICS_TOKEN = "secret-metrics-token"
    extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}

    response = client.get("/metrics", **extra)

    assert response.status_code == 403
    assert b"chatai_" not in response.content
    assert response.json()["error"]["code"] == "permission_denied"


@pytest.mark.django_db
def test_no_token_configured_means_no_bearer_access(client, settings):
    settings.METRICS_TOKEN = ""

    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


@pytest.mark.django_db
def test_metrics_with_the_token_are_prometheus_text(
    client, settings, django_capture_on_commit_callbacks
):
    # given
    settings.METRICS_TOKEN = "secret-metrics-token"
    with django_capture_on_commit_callbacks(execute=True):
        metrics.message_received("twilio")
        metrics.send_failed("cloud_api", "131047")
        metrics.flow_outcome("completed")
    with metrics.webhook_timer("twilio"):
        pass

    # when
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer secret-metrics-token")

    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    body = response.content.decode()
    for name in (
        "chatai_messages_total",
        "chatai_webhook_latency_seconds_bucket",
        "chatai_send_failures_total",
        "chatai_flow_outcomes_total",
        "django_http_requests_total_by_method",
    ):
        assert name in body
    assert 'chatai_send_failures_total{provider="cloud_api",reason="131047"}' in body


@pytest.mark.django_db
def test_staff_session_can_read_metrics_and_other_users_cannot(
    client, staff_user, django_user_model
):
    plain = django_user_model.objects.create_user(username="plain", password="plain-pass-1234")
    client.force_login(plain)
    assert client.get("/metrics").status_code == 403

    client.force_login(staff_user)
    assert client.get("/metrics").status_code == 200


@pytest.mark.django_db
def test_metrics_only_answer_get(client, staff_user):
    client.force_login(staff_user)

    assert client.post("/metrics").status_code == 405


def test_instruments_count_and_labels_stay_bounded():
    before_in = _value("chatai_messages_total", direction="inbound")
    before_out = _value("chatai_messages_total", direction="outbound")

    metrics.message_received("twilio")
    metrics.message_queued(3)
    metrics.message_queued(0)
    metrics.send_failed("twilio", "a reason with spaces")
    metrics.send_failed("twilio", "5511999999999")
    metrics.flow_outcome("handed_off")

    assert _value("chatai_messages_total", direction="inbound") == before_in + 1
    assert _value("chatai_messages_total", direction="outbound") == before_out + 3
    labels = [
        sample.labels["reason"]
        for metric in REGISTRY.collect()
        if metric.name == "chatai_send_failures"
        for sample in metric.samples
    ]
    assert "other" in labels
    assert all(len(label) <= 40 and " " not in label and "5511999" not in label for label in labels)
    assert _value("chatai_flow_outcomes_total", outcome="handed_off") >= 1


def test_webhook_timer_records_even_when_the_body_raises():
    before = _value("chatai_webhook_latency_seconds_count", provider="cloud_api")

    with pytest.raises(ValueError), metrics.webhook_timer() as timer:
        timer["provider"] = "cloud_api"
        raise ValueError("boom")

    assert _value("chatai_webhook_latency_seconds_count", provider="cloud_api") == before + 1


@pytest.mark.django_db(transaction=True)
def test_counts_of_rolled_back_work_are_dropped():
    from django.db import transaction

    before = _value("chatai_messages_total", direction="inbound")
    with pytest.raises(RuntimeError), transaction.atomic():
        metrics.message_received("twilio")
        raise RuntimeError("rolled back")
    with transaction.atomic():
        metrics.message_received("twilio")

    assert _value("chatai_messages_total", direction="inbound") == before + 1
