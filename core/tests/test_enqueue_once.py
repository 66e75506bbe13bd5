"""One publish per thread while its processing is queued and not started (#16 item 3)."""

import pytest
from django.core.cache import cache
from django.db import transaction

from core import tasks as core_tasks
from core.tasks import enqueue_once_on_commit, scheduled_started


class FakeTask:
    name = "tests.fake"

    def __init__(self, *, fail: bool = False) -> None:
        self.published: list[tuple[tuple[object, ...], dict[str, object]]] = []
        self.fail = fail

    def apply_async(self, *, args, kwargs, retry):
        if self.fail:
            raise ConnectionError("broker down")
        self.published.append((args, kwargs))


@pytest.fixture
def broker(settings):
    """A broker and a shared cache are configured (the cache is this process's, which the
    test's "web" and "worker" share)."""
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/15"
    settings.REDIS_URL = "redis://127.0.0.1:6379/15"
    cache.clear()
    yield
    cache.clear()


def publish(task: FakeTask, key: str, *args: object) -> None:
    with transaction.atomic():
        enqueue_once_on_commit(task, key, *args)


pytestmark = pytest.mark.django_db(transaction=True)


def test_a_second_message_before_the_task_starts_publishes_nothing(broker):
    task = FakeTask()

    publish(task, "process_thread:1", "1")
    publish(task, "process_thread:1", "1")

    assert task.published == [(("1",), {})]


def test_other_threads_publish_their_own_task(broker):
    task = FakeTask()

    publish(task, "process_thread:1", "1")
    publish(task, "process_thread:2", "2")

    assert [args for args, _ in task.published] == [("1",), ("2",)]


def test_once_the_task_started_the_next_message_publishes_again(broker):
    # given a published task that has started
    task = FakeTask()
    publish(task, "process_thread:1", "1")
    scheduled_started("process_thread:1")

    # when another message of the thread commits
    publish(task, "process_thread:1", "1")

    # then it is published: the running task may have read before this commit
    assert len(task.published) == 2


def test_a_failed_publish_leaves_no_mark(broker):
    publish(FakeTask(fail=True), "process_thread:1", "1")
    task = FakeTask()

    publish(task, "process_thread:1", "1")

    assert len(task.published) == 1


def test_a_rolled_back_transaction_publishes_nothing_and_marks_nothing(broker):
    task = FakeTask()
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_once_on_commit(task, "process_thread:1", "1")
        raise RuntimeError

    publish(task, "process_thread:1", "1")

    assert len(task.published) == 1


def test_the_mark_expires(broker, monkeypatch):
    # given a task that was published and lost (its mark stays)
    monkeypatch.setattr(core_tasks, "SCHEDULED_MARK_SECONDS", 1)
    task = FakeTask()
    publish(task, "process_thread:1", "1")
    cache.set("chatai:scheduled:process_thread:1", 1, timeout=-1)  # as if the time had passed

    publish(task, "process_thread:1", "1")

    assert len(task.published) == 2


def test_without_a_shared_cache_every_message_publishes(broker, settings):
    # a per-process cache: the worker could never clear the web's mark
    settings.REDIS_URL = ""
    task = FakeTask()

    publish(task, "process_thread:1", "1")
    publish(task, "process_thread:1", "1")

    assert len(task.published) == 2


def test_a_burst_from_one_contact_publishes_one_processing_task(broker, monkeypatch):
    """Through the real ingest: three messages of one thread before the worker starts make one
    publish; the task, once started, lets the next message publish again."""
    from channels_app.providers import ParsedInbound
    from conversations import tasks
    from conversations.services.inbound import message_receive
    from tests import factories

    published: list[tuple[object, ...]] = []
    monkeypatch.setattr(
        tasks.process_thread,
        "apply_async",
        lambda *, args, kwargs, retry: published.append(args),
    )
    monkeypatch.setattr(tasks, "thread_process_inbound", lambda **kwargs: 0)
    channel = factories.TwilioChannelFactory()

    def receive(sid: str):
        inbound = ParsedInbound(provider_message_id=sid, from_phone="+15559990001", text="Hi")
        with transaction.atomic():
            message, _ = message_receive(channel=channel, inbound=inbound)
        return message

    # when three messages arrive before the worker takes the task
    first = receive("SM1")
    receive("SM2")
    receive("SM3")

    # then one task was published for the thread
    assert published == [(str(first.thread_id),)]

    # when the worker starts it and another message arrives
    tasks.process_thread.run(str(first.thread_id))
    receive("SM4")

    # then that message publishes again
    assert len(published) == 2
