"""Flow upload, validation, activation and deletion over the API."""

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from flows.models import Flow
from flows.tests.support import flow_doc
from tests import factories
from tests.api_helpers import error_of, key_client

EXAMPLE = json.loads(
    (Path(__file__).resolve().parent.parent / "flows/examples/fitness-welcome.json").read_text()
)


@pytest.fixture
def channel(tenant):
    return factories.TwilioChannelFactory(tenant=tenant)


@pytest.fixture
def client(tenant):
    return key_client(tenant)


def _broken_flow() -> dict:
    doc = json.loads(json.dumps(EXAMPLE))
    doc["nodes"][1]["choices"][1]["next"] = "nowhere"
    doc["nodes"][0]["next"] = "missing-too"
    return doc


@pytest.mark.django_db
def test_upload_json_creates_versions(client, tenant, channel):
    url = reverse("flow-list", kwargs={"tenant": tenant.pk})
    first = client.post(url, {"channel": str(channel.pk), "definition": EXAMPLE}, format="json")
    assert first.status_code == 201, first.content
    body = first.json()
    assert set(body) == {
        "id",
        "channel",
        "flow_id",
        "version",
        "name",
        "is_active",
        "definition",
        "created_at",
    }
    assert (body["flow_id"], body["version"], body["is_active"]) == ("fitness-welcome", 1, True)
    second = client.post(url, {"channel": str(channel.pk), "definition": EXAMPLE}, format="json")
    assert second.json()["version"] == 2
    versions = client.get(url).json()["results"]
    assert [(v["version"], v["is_active"]) for v in versions] == [(2, True), (1, False)]


@pytest.mark.django_db
def test_upload_a_multipart_file(client, tenant, channel):
    url = reverse("flow-list", kwargs={"tenant": tenant.pk})
    upload = SimpleUploadedFile(
        "flow.json", json.dumps(EXAMPLE).encode(), content_type="application/json"
    )
    response = client.post(url, {"channel": str(channel.pk), "file": upload}, format="multipart")
    assert response.status_code == 201, response.content
    assert Flow.objects.get(pk=response.json()["id"]).definition == EXAMPLE
    not_json = SimpleUploadedFile("flow.json", b"{nope", content_type="application/json")
    bad = client.post(url, {"channel": str(channel.pk), "file": not_json}, format="multipart")
    assert bad.status_code == 400
    assert error_of(bad)["details"] == [
        {
            "path": "file",
            "message": "The file is not valid JSON: "
            "Expecting property name enclosed in double quotes at line 1, column 2.",
        }
    ]
    for raw, message in [
        (b"\xff{}", "The file is not UTF-8 text."),
        (
            b"[" * 100_000,
            "The file cannot be read as JSON (nesting too deep or a number too long).",
        ),
        (b" " * (1024 * 1024 + 1), "The file is larger than 1 MiB."),
    ]:
        upload = SimpleUploadedFile("flow.json", raw, content_type="application/json")
        refused = client.post(url, {"channel": str(channel.pk), "file": upload}, format="multipart")
        assert refused.status_code == 400
        assert error_of(refused)["details"] == [{"path": "file", "message": message}]


@pytest.mark.django_db
def test_invalid_flow_lists_every_error_with_its_path_and_stores_nothing(client, tenant, channel):
    url = reverse("flow-list", kwargs={"tenant": tenant.pk})
    response = client.post(
        url, {"channel": str(channel.pk), "definition": _broken_flow()}, format="json"
    )
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_flow"
    paths = {detail["path"] for detail in error["details"]}
    assert {"nodes[1].choices[1].next", "nodes[0].next"} <= paths
    by_path = {detail["path"]: detail for detail in error["details"]}
    assert by_path["nodes[1].choices[1].next"] == {
        "path": "nodes[1].choices[1].next",
        "node": EXAMPLE["nodes"][1]["id"],
        "message": 'unknown node "nowhere"',
    }
    assert by_path["nodes[0].next"]["node"] == EXAMPLE["nodes"][0]["id"]
    assert not Flow.objects.exists()
    not_object = client.post(url, {"channel": str(channel.pk), "definition": [1]}, format="json")
    assert not_object.status_code == 400 and error_of(not_object)["code"] == "invalid_flow"


@pytest.mark.django_db
def test_a_channel_of_another_tenant_is_refused(client, tenant, other_tenant):
    foreign = factories.TwilioChannelFactory(tenant=other_tenant)
    url = reverse("flow-list", kwargs={"tenant": tenant.pk})
    response = client.post(url, {"channel": str(foreign.pk), "definition": EXAMPLE}, format="json")
    assert response.status_code == 400
    assert [d["path"] for d in error_of(response)["details"]] == ["channel"]
    assert not Flow.objects.exists()
    both = client.post(url, {"channel": str(foreign.pk)}, format="json")
    assert both.status_code == 400


@pytest.mark.django_db
def test_validate_stores_nothing(client, tenant, channel):
    url = reverse("flow-validate", kwargs={"tenant": tenant.pk})
    ok = client.post(url, {"definition": EXAMPLE}, format="json")
    assert ok.status_code == 200
    assert ok.json() == {"valid": True, "flow_id": "fitness-welcome", "name": EXAMPLE["name"]}
    bad = client.post(url, {"definition": _broken_flow()}, format="json")
    assert bad.status_code == 400
    assert "nodes[1].choices[1].next" in {d["path"] for d in error_of(bad)["details"]}
    upload = SimpleUploadedFile("f.json", json.dumps(_broken_flow()).encode())
    as_file = client.post(url, {"file": upload}, format="multipart")
    assert as_file.status_code == 400 and error_of(as_file)["code"] == "invalid_flow"
    assert client.post(url, {}, format="json").status_code == 400
    assert not Flow.objects.exists()


@pytest.mark.django_db
def test_activate_deactivate_and_delete(client, tenant, channel, other_tenant):
    url = reverse("flow-list", kwargs={"tenant": tenant.pk})
    v1 = client.post(url, {"channel": str(channel.pk), "definition": EXAMPLE}, format="json")
    v2 = client.post(url, {"channel": str(channel.pk), "definition": EXAMPLE}, format="json")
    v1_url = reverse("flow-detail", kwargs={"tenant": tenant.pk, "flow": v1.json()["id"]})
    activated = client.patch(v1_url, {"is_active": True}, format="json")
    assert activated.status_code == 200 and activated.json()["is_active"] is True
    assert Flow.objects.get(pk=v2.json()["id"]).is_active is False
    assert client.patch(v1_url, {"is_active": "maybe"}, format="json").status_code == 400
    assert client.delete(v1_url).status_code == 204
    deleted = Flow.all_objects.get(pk=v1.json()["id"])
    assert deleted.deleted_at is not None and deleted.is_active is False
    assert client.get(v1_url).status_code == 404


@pytest.mark.django_db
def test_flow_list_is_scoped_with_a_flat_query_budget(
    client, tenant, channel, other_tenant, django_assert_max_num_queries
):
    foreign_channel = factories.TwilioChannelFactory(tenant=other_tenant)
    Flow.objects.create(
        tenant=other_tenant,
        channel=foreign_channel,
        flow_id="x",
        version=1,
        name="X",
        definition={},
    )
    url = reverse("flow-list", kwargs={"tenant": tenant.pk})
    for rows in (3, 30):
        for version in range(Flow.objects.filter(tenant=tenant).count() + 1, rows + 1):
            Flow.objects.create(
                tenant=tenant,
                channel=channel,
                flow_id="f",
                version=version,
                name="F",
                definition={},
            )
        with django_assert_max_num_queries(4):
            response = client.get(url, {"page_size": 100})
        assert response.json()["count"] == rows
        assert {row["flow_id"] for row in response.json()["results"]} == {"f"}


@pytest.mark.django_db
def test_the_channel_filter_knows_no_other_tenants_channels(client, tenant, channel, other_tenant):
    # given: another tenant's channel, with a flow
    foreign = factories.TwilioChannelFactory(tenant=other_tenant)
    url = reverse("flow-list", kwargs={"tenant": tenant.pk})

    # when: filtering by it, by an id nobody has, and opening the browsable form
    theirs = client.get(url, {"channel": str(foreign.pk)})
    nobodys = client.get(url, {"channel": "00000000-0000-4000-8000-000000000000"})
    page = client.get(url, HTTP_ACCEPT="text/html").content.decode()

    # then: the same empty answer for both, and their channel is nowhere in the page
    assert theirs.status_code == nobodys.status_code == 200
    assert theirs.json()["results"] == nobodys.json()["results"] == []
    assert str(foreign.pk) not in page and foreign.identifier not in page
    assert client.get(url, {"channel": "not-a-uuid"}).status_code == 400


@pytest.mark.django_db
def test_a_flow_text_the_database_cannot_store_is_invalid(client, tenant, channel):
    doc = json.loads(json.dumps(EXAMPLE))
    doc["nodes"][0]["text"] = "Hi\x00"
    url = reverse("flow-list", kwargs={"tenant": tenant.pk})
    response = client.post(url, {"channel": str(channel.pk), "definition": doc}, format="json")
    assert response.status_code == 400
    assert [d["path"] for d in error_of(response)["details"]] == ["nodes[0].text"]
    assert not Flow.objects.exists()


def _branch_flow(value: str) -> bytes:
    """A flow whose branch compares with `value`, written as raw JSON (e.g. 1e400 or NaN)."""
    doc = flow_doc(
        "numbers",
        trigger={"default": True},
        start="b",
        nodes=[
            {
                "id": "b",
                "type": "branch",
                "cases": [{"when": {"input": True, "op": "eq", "value": 0}, "next": "e"}],
                "default": "e",
            },
            {"id": "e", "type": "end", "text": "bye"},
        ],
    )
    return json.dumps(doc).replace('"value": 0', f'"value": {value}').encode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw",
    [_branch_flow("1e400"), _branch_flow("NaN"), b"[" * 100_000, b"1" * 5000],
    ids=["infinite", "nan", "deep", "huge-int"],
)
def test_a_flow_file_python_reads_but_postgres_would_not_is_400(client, tenant, channel, raw):
    upload = SimpleUploadedFile("flow.json", raw, content_type="application/json")
    response = client.post(
        reverse("flow-list", kwargs={"tenant": tenant.pk}),
        {"channel": str(channel.pk), "file": upload},
        format="multipart",
    )
    assert response.status_code == 400, response.content
    assert not Flow.objects.exists()
