"""Re-encrypting every PII value with the newest key (`rotate_pii_keys`).

Works on the raw column values: a token already written by the first key is skipped, a token
written by an older key is re-encrypted with `MultiFernet.rotate`, and the new token is written
with a compare-and-swap UPDATE (the row still holds the token we read), so a value changed
concurrently by the application is never overwritten with a stale one. `updated_at` is not
touched: rotation changes no value.

Every batch of rows (ordered by primary key) is its own transaction, so an interrupted run
keeps the batches it finished; running again skips what is already rotated and finishes.
"""

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.apps import apps
from django.db import models, transaction
from django.db.models import Value
from django.db.models.functions import Cast

from core.crypto import DecryptionError, needs_rotation, rotate_token
from core.fields import EncryptedJSONField, EncryptedTextField

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500


@dataclass
class FieldGroup:
    """The encrypted fields of one model."""

    model: type[models.Model]
    fields: list[models.Field] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.model._meta.label


@dataclass
class RotationStats:
    """Counts for one model: rows read, values re-encrypted, values no key could decrypt."""

    label: str
    rows_scanned: int = 0
    values_rotated: int = 0
    values_failed: int = 0
    batches: int = 0


def encrypted_field_groups() -> list[FieldGroup]:
    """Every concrete model with an encrypted field, found through the app registry."""
    groups = []
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        encrypted = [
            model_field
            for model_field in model._meta.local_concrete_fields
            if isinstance(model_field, EncryptedTextField | EncryptedJSONField)
        ]
        if encrypted:
            groups.append(FieldGroup(model=model, fields=encrypted))
    return sorted(groups, key=lambda group: group.label)


def _raw(model_field: models.Field) -> Cast:
    # A plain TextField output skips the encrypted field's from_db_value: we get the token.
    return Cast(model_field.attname, output_field=models.TextField())


def _batches(group: FieldGroup, batch_size: int) -> Iterator[list[tuple]]:
    """Keyset pagination over every row (soft-deleted ones too), by primary key."""
    manager = group.model._base_manager
    pk_name = group.model._meta.pk.attname
    annotations = {f"raw_{f.attname}": _raw(f) for f in group.fields}
    last_pk = None
    while True:
        queryset = manager.annotate(**annotations).order_by(pk_name)
        if last_pk is not None:
            queryset = queryset.filter(pk__gt=last_pk)
        rows = list(queryset.values_list(pk_name, *annotations)[:batch_size])
        if not rows:
            return
        yield rows
        last_pk = rows[-1][0]


def _rotate_batch(group: FieldGroup, rows: list[tuple], stats: RotationStats) -> None:
    """Rotate one batch in one transaction. Values no key decrypts are counted and left as is."""
    manager = group.model._base_manager
    with transaction.atomic():
        for pk, *tokens in rows:
            for model_field, token in zip(group.fields, tokens, strict=True):
                if not token or not needs_rotation(token):
                    continue
                try:
                    rotated = rotate_token(token)
                except DecryptionError:
                    stats.values_failed += 1
                    logger.warning(
                        "rotation: value cannot be decrypted with any key",
                        extra={"model": group.label, "field": model_field.attname, "pk": str(pk)},
                    )
                    continue
                # Compare and swap each column on its own: when the application rewrote one
                # column meanwhile (always with the newest key), the others still rotate.
                updated = (
                    manager.alias(raw=_raw(model_field))
                    .filter(pk=pk, raw=token)
                    .update(
                        **{model_field.attname: Value(rotated, output_field=models.TextField())}
                    )
                )
                stats.values_rotated += updated
        stats.rows_scanned += len(rows)
        stats.batches += 1


def rotate_all(
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_progress: Callable[[RotationStats], None] | None = None,
) -> list[RotationStats]:
    """Re-encrypt every encrypted value of every model with the first key.

    Guarantees: afterwards every value that any configured key could decrypt is written by
    the first key alone; rows already rotated are not written again; each batch commits on
    its own (an exception stops the run with the earlier batches kept). Values no key can
    decrypt are counted in `values_failed`, logged by model, field and pk, and left as is.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    results = []
    for group in encrypted_field_groups():
        stats = RotationStats(label=group.label)
        for rows in _batches(group, batch_size):
            _rotate_batch(group, rows, stats)
            if on_progress is not None:
                on_progress(stats)
        logger.info(
            "rotation: model done",
            extra={
                "model": stats.label,
                "rows": stats.rows_scanned,
                "rotated": stats.values_rotated,
                "failed": stats.values_failed,
            },
        )
        results.append(stats)
    return results
