import pytest
from django.core.exceptions import ValidationError

from tenants.models import DEFAULT_OPT_OUT_KEYWORDS, Tenant, TenantProjectConfig
from tenants.services import tenant_create, tenant_update


@pytest.mark.django_db
def test_tenant_create_makes_tenant_and_config_together():
    tenant = tenant_create(
        name="Acme Fitness",
        owner_name="Ana Souza",
        owner_email="ana@example.com",
        owner_phone="+5511988887777",
        config={"business_description": "A gym", "language": "pt-BR"},
        opt_out_keywords=["STOP", " parar ", "stop"],
    )
    assert tenant.slug == "acme-fitness"
    assert tenant.config.language == "pt-BR"
    assert tenant.opt_out_keywords == ["stop", "parar"]
    assert tenant.opt_in_keywords == ["start", "subscribe", "voltar"]


@pytest.mark.django_db
def test_tenant_create_derives_unique_slugs_and_refuses_a_taken_one():
    first = tenant_create(name="Acme")
    second = tenant_create(name="Acme")
    assert (first.slug, second.slug) == ("acme", "acme-2")
    with pytest.raises(ValidationError) as excinfo:
        tenant_create(name="Other", slug="acme")
    assert "slug" in excinfo.value.message_dict


@pytest.mark.django_db
def test_tenant_create_is_atomic_on_bad_config():
    with pytest.raises(ValidationError):
        tenant_create(name="Broken", config={"nonsense": "x"})
    assert not Tenant.all_objects.exists()
    assert not TenantProjectConfig.all_objects.exists()


@pytest.mark.django_db
def test_tenant_update_and_soft_delete_hide_the_row(tenant):
    tenant_update(tenant=tenant, data={"name": "Renamed", "config": {"language": "es"}})
    tenant.refresh_from_db()
    assert tenant.name == "Renamed" and tenant.config.language == "es"
    tenant.soft_delete()
    assert not Tenant.objects.filter(pk=tenant.pk).exists()
    assert Tenant.all_objects.filter(pk=tenant.pk).exists()


@pytest.mark.django_db
def test_default_opt_out_keywords_match_the_spec():
    assert DEFAULT_OPT_OUT_KEYWORDS == ["stop", "unsubscribe", "parar", "sair", "cancelar", "baja"]
