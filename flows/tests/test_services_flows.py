"""flow_create / flow_set_active / flow_validate: versions, activation, validation."""

import pytest
from django.core.exceptions import ValidationError

from flows import selectors
from flows.engine import FlowValidationError
from flows.models import Flow
from flows.services import flow_create, flow_set_active, flow_validate
from flows.tests.support import (
    example,
    flow_doc,
    private_cache,  # noqa: F401 - a fixture used by name
)
from tests import factories

pytestmark = pytest.mark.django_db


def test_versions_increase_per_flow_id_and_channel(tenant, twilio_channel):
    other_channel = factories.TwilioChannelFactory(tenant=tenant)

    first = flow_create(tenant=tenant, channel=twilio_channel, definition=flow_doc("a"))
    second = flow_create(tenant=tenant, channel=twilio_channel, definition=flow_doc("a"))
    other_flow = flow_create(tenant=tenant, channel=twilio_channel, definition=flow_doc("b"))
    elsewhere = flow_create(tenant=tenant, channel=other_channel, definition=flow_doc("a"))

    assert (first.version, second.version) == (1, 2)
    assert other_flow.version == 1
    assert elsewhere.version == 1


def test_activating_a_new_version_deactivates_the_others(tenant, twilio_channel):
    first = flow_create(tenant=tenant, channel=twilio_channel, definition=flow_doc("a"))
    second = flow_create(tenant=tenant, channel=twilio_channel, definition=flow_doc("a"))
    third = flow_create(
        tenant=tenant, channel=twilio_channel, definition=flow_doc("a"), activate=False
    )

    active = Flow.objects.filter(channel=twilio_channel, flow_id="a", is_active=True)
    assert list(active) == [second]
    first.refresh_from_db()
    assert first.is_active is False
    assert third.is_active is False

    flow_set_active(flow=first, is_active=True)
    assert set(Flow.objects.filter(is_active=True)) == {first}

    flow_set_active(flow=first, is_active=False)
    assert not Flow.objects.filter(is_active=True).exists()


def test_a_deleted_version_number_is_never_reused(tenant, twilio_channel):
    first = flow_create(tenant=tenant, channel=twilio_channel, definition=flow_doc("a"))
    first.soft_delete()

    again = flow_create(tenant=tenant, channel=twilio_channel, definition=flow_doc("a"))

    assert again.version == 2


def test_trigger_fields_are_copied_and_normalised(tenant, twilio_channel):
    doc = flow_doc(
        "promo",
        trigger={
            "keywords": ["Promoção", "PROMO!", "promo"],
            "match": "only_word",
            "default": True,
            "weight": 30,
        },
        settings={"ignore_keywords": True},
    )

    flow = flow_create(tenant=tenant, channel=twilio_channel, definition=doc)

    assert flow.trigger_keywords == ["promocao", "promo"]
    assert flow.trigger_match == "only_word"
    assert flow.is_default is True
    assert flow.weight == 30
    assert flow.ignore_keywords is True
    assert flow.name == "Flow promo"
    assert flow.definition == doc


def test_invalid_definition_stores_nothing_and_lists_every_issue(tenant, twilio_channel):
    doc = flow_doc("bad")
    doc["nodes"][0]["choices"][1]["next"] = "nowhere"
    doc["nodes"][1]["type"] = "bogus"

    with pytest.raises(FlowValidationError) as excinfo:
        flow_create(tenant=tenant, channel=twilio_channel, definition=doc)

    paths = {issue.path for issue in excinfo.value.issues}
    assert "nodes[0].choices[1].next" in paths
    assert any(path.startswith("nodes[1]") for path in paths)
    assert Flow.all_objects.count() == 0


def test_channel_of_another_tenant_is_rejected(tenant, other_tenant):
    foreign = factories.TwilioChannelFactory(tenant=other_tenant)

    with pytest.raises(ValidationError):
        flow_create(tenant=tenant, channel=foreign, definition=flow_doc("a"))

    assert Flow.all_objects.count() == 0


def test_flow_validate_returns_issues_with_paths():
    assert flow_validate(definition=example("fitness-welcome")) == []
    issues = flow_validate(definition={"schema_version": 2})
    assert issues
    assert all(hasattr(issue, "path") and issue.message for issue in issues)


def test_cached_candidates_follow_create_and_activation(
    tenant, twilio_channel, django_capture_on_commit_callbacks
):
    # given a cached, empty candidate list
    assert selectors.flow_candidates_active(channel_id=twilio_channel.pk) == []

    # when a flow is created (the cache is invalidated on commit)
    with django_capture_on_commit_callbacks(execute=True):
        flow = flow_create(tenant=tenant, channel=twilio_channel, definition=flow_doc("a"))

    # then the next read sees it, and a deactivation is seen too
    assert [c.pk for c in selectors.flow_candidates_active(channel_id=twilio_channel.pk)] == [
        str(flow.pk)
    ]
    with django_capture_on_commit_callbacks(execute=True):
        flow_set_active(flow=flow, is_active=False)
    assert selectors.flow_candidates_active(channel_id=twilio_channel.pk) == []


@pytest.mark.usefixtures("private_cache")
def test_cached_candidates_cost_no_query_when_warm(twilio_channel, django_assert_num_queries):
    selectors.flow_candidates_active(channel_id=twilio_channel.pk)
    with django_assert_num_queries(0):
        selectors.flow_candidates_active(channel_id=twilio_channel.pk)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_uploads_get_distinct_versions(tenant, twilio_channel):
    import threading

    from django.db import connection

    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def upload() -> None:
        try:
            barrier.wait()
            flow_create(tenant=tenant, channel=twilio_channel, definition=flow_doc("race"))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=upload) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    versions = sorted(Flow.objects.filter(flow_id="race").values_list("version", flat=True))
    assert versions == [1, 2, 3, 4]
    assert Flow.objects.filter(flow_id="race", is_active=True).count() == 1
