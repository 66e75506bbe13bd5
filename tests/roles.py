"""What each kind of principal may do, as the tests expect it: written here once, independently
of `tenants.access`, for the API sweep (`tests/test_api_isolation.py`) and the admin sweep
(`tests/test_admin_roles.py`), so the two hold the API and the admin to the same answers."""

from django.contrib.auth.models import Group
from django.test import Client

VIEW, REPLY, EXPORT, ERASE, MANAGE = "view", "reply", "export", "erase", "manage"
KEYS, MEMBERS, PLATFORM = "manage_keys", "manage_members", "platform"

OWNER = {VIEW, REPLY, EXPORT, ERASE, MANAGE, KEYS, MEMBERS}
ALLOWED = {
    "owner": OWNER,
    "agent": {VIEW, REPLY},
    "viewer": {VIEW},
    "key": {VIEW, REPLY, EXPORT, ERASE, MANAGE},
    "platform_group": OWNER | {PLATFORM},
    "superuser": OWNER | {PLATFORM},
}
USER_KINDS = sorted(set(ALLOWED) - {"key"})


def logged_in(client: Client, kind: str, tenant, django_user_model, member) -> Client:
    """`client` logged in as a user of `kind` ("owner", "agent", "viewer", "platform_group"
    or "superuser") on `tenant`."""
    if kind == "superuser":
        user = django_user_model.objects.create_user(username="root", is_superuser=True)
    elif kind == "platform_group":
        user = django_user_model.objects.create_user(username="ops")
        user.groups.add(Group.objects.get(name="Platform staff"))
    else:
        user = member(tenant, kind)
    client.force_login(user)
    return client
