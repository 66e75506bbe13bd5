"""Celery tasks of the webhooks to tenants' systems (bodies are in integrations.services)."""

from celery import shared_task

from integrations.services import deliveries_due_send, delivery_attempt


@shared_task(name="integrations.tasks.send_webhook", ignore_result=True, acks_late=True)
def send_webhook(delivery_id: str) -> str:
    """One attempt of a delivery, right after the event's transaction committed. A failed
    attempt is retried by `send_due_webhooks` at its backoff time (not by Celery), so a
    worker restart never loses or repeats one."""
    return delivery_attempt(delivery_id=delivery_id)


@shared_task(name="integrations.tasks.send_due_webhooks", ignore_result=True)
def send_due_webhooks() -> dict[str, int]:
    """Every due retry (beat, and the embedded scheduler, every 30 seconds)."""
    return deliveries_due_send()
