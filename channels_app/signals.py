"""Forget memoised channels whenever a channel or its tenant changes (see selectors)."""

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from channels_app.models import ChannelInstance
from channels_app.selectors import channels_invalidate
from tenants.models import Tenant


@receiver(post_save, sender=ChannelInstance, dispatch_uid="channels-invalidate-save")
@receiver(post_delete, sender=ChannelInstance, dispatch_uid="channels-invalidate-delete")
@receiver(post_save, sender=Tenant, dispatch_uid="channels-invalidate-tenant-save")
@receiver(post_delete, sender=Tenant, dispatch_uid="channels-invalidate-tenant-delete")
def _invalidate(sender: Any, **kwargs: Any) -> None:
    channels_invalidate()
