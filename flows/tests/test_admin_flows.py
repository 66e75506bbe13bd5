"""The flows admin: upload (valid / invalid with every path shown), versions, activation,
the readable node view, read-only sessions."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from flows.models import Flow
from flows.services import flow_create
from flows.tests.support import example, flow_doc

pytestmark = pytest.mark.django_db

UPLOAD = "admin:flows_flow_upload"


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


def test_add_goes_to_the_upload_form(admin_client):
    response = admin_client.get(reverse("admin:flows_flow_add"))

    assert response.status_code == 302
    assert response["Location"] == reverse(UPLOAD)


def test_upload_a_json_file_creates_an_active_version(admin_client, twilio_channel, staff_user):
    upload = SimpleUploadedFile(
        "fitness.json",
        json.dumps(example("fitness-welcome")).encode(),
        content_type="application/json",
    )

    response = admin_client.post(
        reverse(UPLOAD), {"channel": twilio_channel.pk, "file": upload, "activate": "on"}
    )

    flow = Flow.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:flows_flow_change", args=[flow.pk])
    assert (flow.flow_id, flow.version, flow.is_active) == ("fitness-welcome", 1, True)
    assert flow.tenant == twilio_channel.tenant
    assert flow.created_by == staff_user


def test_pasted_json_adds_a_new_version(admin_client, tenant, twilio_channel):
    flow_create(tenant=tenant, channel=twilio_channel, definition=flow_doc("a"))

    admin_client.post(
        reverse(UPLOAD),
        {"channel": twilio_channel.pk, "definition_text": json.dumps(flow_doc("a"))},
    )

    versions = list(Flow.objects.order_by("version").values_list("version", "is_active"))
    assert versions == [(1, True), (2, False)]  # "activate" unticked


def test_invalid_flow_shows_every_error_with_its_path_and_stores_nothing(
    admin_client, twilio_channel
):
    doc = flow_doc("bad")
    doc["nodes"][0]["choices"][1]["next"] = "pricing"
    doc["nodes"][1]["txt"] = "typo"
    doc["start"] = "nope"

    response = admin_client.post(
        reverse(UPLOAD),
        {"channel": twilio_channel.pk, "definition_text": json.dumps(doc), "activate": "on"},
    )

    assert response.status_code == 200
    html = response.content.decode()
    issues = response.context["issues"]
    assert len(issues) >= 3
    for issue in issues:
        assert f"<code>{issue.location}</code>" in html
    paths = {issue.path for issue in issues}
    assert {"nodes[0].choices[1].next", "start"} <= paths
    # the node's id is shown after its index
    assert "<code>nodes[0](ask).choices[1].next</code>" in html
    assert any(p.startswith("nodes[1]") for p in paths)
    assert "Nothing was stored" in html
    assert not Flow.all_objects.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"definition_text": "{not json"}, "This is not valid JSON"),
        ({}, "Upload a .json file or paste the flow JSON."),
    ],
)
def test_bad_input_is_a_form_error(admin_client, twilio_channel, data, message):
    response = admin_client.post(reverse(UPLOAD), {"channel": twilio_channel.pk, **data})

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Flow.all_objects.exists()


def test_tenant_filter_limits_the_channels(admin_client, twilio_channel, other_tenant):
    from tests import factories

    foreign = factories.TwilioChannelFactory(tenant=other_tenant)

    response = admin_client.get(reverse(UPLOAD), {"tenant": str(twilio_channel.tenant_id)})

    choices = list(response.context["form"].fields["channel"].queryset)
    assert choices == [twilio_channel]
    assert foreign not in choices


def test_activate_and_deactivate_actions(admin_client, tenant, twilio_channel):
    v1 = flow_create(tenant=tenant, channel=twilio_channel, definition=flow_doc("a"))
    v2 = flow_create(tenant=tenant, channel=twilio_channel, definition=flow_doc("a"))
    changelist = reverse("admin:flows_flow_changelist")

    admin_client.post(changelist, {"action": "activate_selected", "_selected_action": [v1.pk]})
    v1.refresh_from_db()
    v2.refresh_from_db()
    assert (v1.is_active, v2.is_active) == (True, False)

    # two versions of one flow cannot both be activated
    response = admin_client.post(
        changelist,
        {"action": "activate_selected", "_selected_action": [v1.pk, v2.pk]},
        follow=True,
    )
    assert "at most one version per flow" in response.content.decode()
    v2.refresh_from_db()
    assert v2.is_active is False

    admin_client.post(changelist, {"action": "deactivate_selected", "_selected_action": [v1.pk]})
    assert not Flow.objects.filter(is_active=True).exists()


def test_change_page_is_read_only_with_versions_and_pretty_json(
    admin_client, tenant, twilio_channel
):
    v1 = flow_create(tenant=tenant, channel=twilio_channel, definition=example("fitness-welcome"))
    v2 = flow_create(tenant=tenant, channel=twilio_channel, definition=example("fitness-welcome"))

    response = admin_client.get(reverse("admin:flows_flow_change", args=[v1.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "\n  &quot;flow_id&quot;: &quot;fitness-welcome&quot;" in html  # indented JSON
    assert reverse("admin:flows_flow_change", args=[v2.pk]) in html
    assert "v2</a> (active)" in html
    assert 'name="_save"' not in html
    assert reverse("admin:flows_flow_nodes", args=[v1.pk]) in html
    # posting a change does not alter the stored definition
    admin_client.post(reverse("admin:flows_flow_change", args=[v1.pk]), {"name": "Hacked"})
    v1.refresh_from_db()
    assert v1.name == "Fitness studio welcome"


def test_changelist_lists_versions_with_a_fixed_number_of_queries(
    admin_client, tenant, twilio_channel, django_assert_max_num_queries
):
    for flow_id in ("a", "b", "c"):
        flow_create(tenant=tenant, channel=twilio_channel, definition=flow_doc(flow_id))

    with django_assert_max_num_queries(12):
        response = admin_client.get(reverse("admin:flows_flow_changelist"))

    assert response.status_code == 200
    assert response.context["cl"].result_count == 3


def test_nodes_view_lists_every_node_with_texts_choices_and_targets(
    admin_client, tenant, twilio_channel
):
    flow = flow_create(tenant=tenant, channel=twilio_channel, definition=example("fitness-welcome"))

    response = admin_client.get(reverse("admin:flows_flow_nodes", args=[flow.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    for node in example("fitness-welcome")["nodes"]:
        assert f'id="node-{node["id"]}"' in html
    assert "Book a free trial" in html
    assert 'href="#node-ask_day"' in html
    assert "no reply in 3600 s" in html
    assert "hands off to a person" in html
    assert "case 1:" in html


def test_sessions_are_read_only(admin_client, staff_user):
    from django.contrib.admin.sites import site

    from flows.models import FlowSession

    session_admin = site._registry[FlowSession]
    request = type("R", (), {"user": staff_user})()
    assert not session_admin.has_add_permission(request)
    assert not session_admin.has_change_permission(request)
    assert not session_admin.has_delete_permission(request)
    assert admin_client.get(reverse("admin:flows_flowsession_changelist")).status_code == 200


def test_non_staff_cannot_upload(client, django_user_model, twilio_channel):
    user = django_user_model.objects.create_user(username="u", password="pw-123456789")
    client.force_login(user)

    response = client.post(
        reverse(UPLOAD), {"channel": twilio_channel.pk, "definition_text": json.dumps(flow_doc())}
    )

    assert response.status_code == 302  # to the admin login
    assert not Flow.all_objects.exists()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff{}", "The file is not UTF-8 text."),
        (b"{\n  1}", "This is not valid JSON: Expecting property name enclosed in double quotes"),
        (b"[" * 100_000, "This cannot be read as JSON (nesting too deep or a number too long)."),
        (b" " * (2 * 1024 * 1024 + 1), "The file is larger than 2 MiB."),
    ],
)
def test_unreadable_uploads_say_why_as_the_api_and_the_command_do(
    admin_client, twilio_channel, raw, message
):
    upload = SimpleUploadedFile("flow.json", raw, content_type="application/json")
    response = admin_client.post(reverse(UPLOAD), {"channel": twilio_channel.pk, "file": upload})

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Flow.all_objects.exists()
