"""The old home of the flow timers' task; the pipeline fires them now
(`conversations.tasks.process_flow_timeouts`, same task name). Kept importable: the beat
schedule and the embedded scheduler find a task by its name, which is this module's path."""

from conversations.tasks import process_flow_timeouts

__all__ = ["process_flow_timeouts"]
