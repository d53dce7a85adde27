"""The durable message queue: the interface (interface.py) and its one backend today, a maildir-style spool
(maildir.py). Everything outside this package uses the verbs of MessageQueue and never a queue file's name;
a second backend is a new module here that passes tests/test_queue_conformance.py.
"""

from __future__ import annotations

from pathlib import Path

from letta_cli.store.queue.interface import STATES, Claimed, Entry, MessageQueue, QueueItem, State
from letta_cli.store.queue.maildir import MaildirQueue, sweep_temp_files

Queue = MaildirQueue  # the default backend, by the name the engine uses


def open_queue(root: Path) -> MessageQueue:
    """The workspace's queue (its folder is Workspace.queue_dir)."""
    return MaildirQueue(root)


__all__ = [
    "STATES",
    "Claimed",
    "Entry",
    "MaildirQueue",
    "MessageQueue",
    "Queue",
    "QueueItem",
    "State",
    "open_queue",
    "sweep_temp_files",
]
