"""Hard deletion of soft-deleted rows past retention (`purge_deleted`).

Models are processed children first (a model before every model it points to), each in
batches of primary keys, one transaction per batch. Deleting a row deletes what cascades
from it (a purged thread takes its messages with it, live or not), and stored attachment
files of every deleted attachment are removed from storage after the batch commits.

PROTECT: a row that a row outside the purged subtree still references through a PROTECT
foreign key is skipped and counted, never forced (a row referenced only from inside the same
purged subtree goes with it; see `_PurgeCollector`); RESTRICT keeps Django's semantics and a
restricted row is skipped too. In practice this is a soft-deleted Flow version whose
FlowSessions still exist: sessions are history that per-flow stats read, so the flow version
stays until its sessions go (with their thread, contact, channel or tenant), and a later run
purges it. Sessions of purged flows are never deleted just to make room.
"""

import logging
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.apps import apps
from django.core.files.storage import default_storage
from django.db import models, router, transaction
from django.db.models.deletion import Collector, RestrictedError
from django.utils import timezone

from core.models import BaseModel

logger = logging.getLogger(__name__)

BATCH_SIZE = 500


def _file_fields(model: type[models.Model]) -> list[models.FileField]:
    return [f for f in model._meta.concrete_fields if isinstance(f, models.FileField)]


def _protecting_relations(model: type[models.Model]) -> list:
    """Reverse relations whose rows PROTECT a row of `model` from deletion."""
    return [r for r in model._meta.related_objects if r.on_delete is models.PROTECT]


def _has_protecting_fk(model: type[models.Model]) -> bool:
    return any(
        getattr(f.remote_field, "on_delete", None) is models.PROTECT
        for f in model._meta.concrete_fields
        if f.is_relation
    )


class _PurgeCollector(Collector):
    """Django's deletion collector with two changes for purging whole subtrees.

    - Models with file fields or with a PROTECT foreign key are collected as instances (never
      fast-deleted), so their stored files and their ids are known.
    - PROTECT does not stop the collection. Instead, `protected_leftovers()` says whether a
      collected row is still referenced through PROTECT by a row that is NOT collected. When it
      is not (a purged tenant's flows are referenced only by that tenant's sessions, which go
      too), deleting the whole set is safe: Django's own PROTECT refuses this case outright.
    """

    def can_fast_delete(self, objs, from_field=None):  # type: ignore[no-untyped-def]
        if isinstance(objs, type):
            model = objs
        elif hasattr(objs, "model"):
            model = objs.model
        elif hasattr(objs, "_meta"):
            model = type(objs)
        else:
            return super().can_fast_delete(objs, from_field=from_field)
        if _file_fields(model) or _has_protecting_fk(model):
            return False
        return super().can_fast_delete(objs, from_field=from_field)

    def related_objects(self, related_model, related_fields, objs):  # type: ignore[no-untyped-def]
        queryset = super().related_objects(related_model, related_fields, objs)
        if all(f.remote_field.on_delete is models.PROTECT for f in related_fields):
            return queryset.none()
        return queryset

    def protected_leftovers(self) -> bool:
        for model, instances in self.data.items():
            pks = [instance.pk for instance in instances]
            for relation in _protecting_relations(model):
                doomed = {obj.pk for obj in self.data.get(relation.related_model, ())}
                referencing = relation.related_model._base_manager.filter(
                    **{f"{relation.field.attname}__in": pks}
                ).values_list("pk", flat=True)
                if any(pk not in doomed for pk in referencing.iterator()):
                    return True
        return False

    def stored_files(self) -> list[str]:
        names = []
        for model, instances in self.data.items():
            for file_field in _file_fields(model):
                for instance in instances:
                    name = getattr(instance, file_field.attname)
                    if name:
                        names.append(str(name))
        return names


def purgeable_models() -> list[type[models.Model]]:
    """Soft-deletable models, each before the models it references (children first)."""
    candidates = [
        model
        for model in apps.get_models()
        if issubclass(model, BaseModel) and not model._meta.proxy and model._meta.managed
    ]
    ordered: list[type[models.Model]] = []
    visiting: set[type[models.Model]] = set()

    def visit(model: type[models.Model]) -> None:
        if model in ordered or model in visiting:
            return
        visiting.add(model)
        # Every model that points at `model` (its children) goes first.
        for relation in model._meta.related_objects:
            child = relation.related_model
            if child in candidates and child is not model:
                visit(child)
        visiting.discard(model)
        ordered.append(model)

    for model in sorted(candidates, key=lambda m: m._meta.label):
        visit(model)
    return ordered


def _referenced(model: type[models.Model]) -> models.Q | None:
    """Rows something references through a PROTECT foreign key (None: no such key).

    PROTECT relations are never followed from the protected row, so such a row cannot be
    purged on its own; it is left out before batching instead of failing one by one.
    """
    condition = None
    for relation in model._meta.related_objects:
        if relation.on_delete is models.PROTECT:
            attname = relation.field.attname
            referencing = relation.related_model._base_manager.filter(
                **{f"{attname}__isnull": False}
            ).values(attname)
            clause = models.Q(pk__in=referencing)
            condition = clause if condition is None else condition | clause
    return condition


def _delete_files(names: list[str]) -> None:
    failed = 0
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:  # noqa: BLE001 - one storage error must not keep the other files
            failed += 1
    if failed:
        logger.warning("purge: stored files not deleted", extra={"failed": failed})


def _delete_batch(model: type[models.Model], pks: list, counts: Counter) -> int:
    """Delete the rows `pks` of `model` and what cascades from them; return rows skipped."""
    using = router.db_for_write(model)
    skipped = 0
    with transaction.atomic(using=using):
        queryset = model._base_manager.filter(pk__in=pks)
        collector = _PurgeCollector(using=using, origin=queryset)
        try:
            collector.collect(queryset)
            blocked = collector.protected_leftovers()
        except RestrictedError:
            blocked = True
        targets = [collector]
        if blocked:
            # Something outside these rows' subtrees still needs one of them: go one by one.
            targets = []
            for row in queryset:
                single = _PurgeCollector(using=using, origin=row)
                try:
                    single.collect([row])
                    if single.protected_leftovers():
                        raise RestrictedError("protected", set())
                except RestrictedError:
                    skipped += 1
                    continue
                targets.append(single)
        names = []
        for target in targets:
            names.extend(target.stored_files())
            _total, per_model = target.delete()
            counts.update({label: n for label, n in per_model.items() if n})
        if names:
            transaction.on_commit(lambda: _delete_files(names), using=using)
        counts["files"] += len(names)
    return skipped


def _pk_batches(queryset: models.QuerySet, size: int) -> Iterator[list]:
    last = None
    while True:
        page = queryset.order_by("pk")
        if last is not None:
            page = page.filter(pk__gt=last)
        pks = list(page.values_list("pk", flat=True)[:size])
        if not pks:
            return
        yield pks
        last = pks[-1]


def purge_deleted(
    *, older_than_days: int, now: datetime | None = None, batch_size: int = BATCH_SIZE
) -> Counter:
    """Hard-delete rows soft-deleted more than `older_than_days` days ago.

    Returns counts per model label of rows deleted (cascaded rows included), `files` for
    stored files removed, and `skipped:<label>` for rows kept because something still
    references them through a protecting foreign key. Raises ValueError for a negative age.
    """
    if older_than_days < 0:
        raise ValueError("older_than_days must be >= 0.")
    cutoff = (now or timezone.now()) - timedelta(days=older_than_days)
    counts: Counter = Counter()
    for model in purgeable_models():
        expired = model._base_manager.filter(deleted_at__isnull=False, deleted_at__lt=cutoff)
        referenced = _referenced(model)
        if referenced is not None:
            kept = expired.filter(referenced).count()
            if kept:
                counts[f"skipped:{model._meta.label}"] += kept
            expired = expired.exclude(referenced)
        for pks in _pk_batches(expired, batch_size):
            skipped = _delete_batch(model, pks, counts)
            if skipped:
                counts[f"skipped:{model._meta.label}"] += skipped
    logger.info("purge done", extra={"counts": dict(counts)})
    return counts
