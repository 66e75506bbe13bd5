"""The shared model base: UUID keys, timestamps and soft delete."""

import uuid

from django.db import models
from django.utils import timezone


class LiveQuerySet(models.QuerySet):
    def soft_delete(self) -> int:
        return self.update(deleted_at=timezone.now())


class LiveManager(models.Manager.from_queryset(LiveQuerySet)):  # type: ignore[misc]
    """The default manager: hides soft-deleted rows."""

    def get_queryset(self) -> LiveQuerySet:
        return super().get_queryset().filter(deleted_at__isnull=True)


class BaseModel(models.Model):
    """UUID primary key, created/updated timestamps and soft delete.

    `objects` sees live rows only; `all_objects` sees deleted rows too.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = LiveManager()
    all_objects = models.Manager()  # noqa: DJ012 - managers are declared together

    class Meta:
        abstract = True
        base_manager_name = "all_objects"
        default_manager_name = "objects"

    def soft_delete(self) -> None:
        self.deleted_at = timezone.now()
        self.save(update_fields=["deleted_at", "updated_at"])

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None
