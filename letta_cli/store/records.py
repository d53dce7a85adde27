"""Turn records: .agents/turns/<message_id>.json, the commit point of a handled message.

A record is written atomically once a turn is complete. Its existence makes redelivery of the same message
a no-op, and it is where a waiting `agents send` (or a waiting agent) finds the reply.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from letta_cli.core.models import TurnRecord
from letta_cli.store.fsio import atomic_write, check_dir


class TurnRecords:
    def __init__(self, root: Path):
        self.root = root

    def path(self, message_id: str) -> Path:
        return self.root / f"{message_id}.json"

    def get(self, message_id: str) -> TurnRecord | None:
        try:
            return TurnRecord.model_validate_json(self.path(message_id).read_bytes())
        except FileNotFoundError:
            return None
        except (ValidationError, ValueError):
            return None  # torn by a crash before the rename? impossible with atomic writes; treat as absent

    def exists(self, message_id: str) -> bool:
        return self.path(message_id).exists()

    def discard(self, message_id: str) -> None:
        """Forget a record (a dead letter given another chance must not be found dead again at once)."""
        check_dir(self.root)
        self.path(message_id).unlink(missing_ok=True)

    def commit(self, record: TurnRecord) -> None:
        atomic_write(self.path(record.message_id), record.model_dump_json())
