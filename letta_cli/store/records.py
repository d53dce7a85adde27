"""Turn records: .agents/turns/<message_id>.json, the commit point of a handled message.

A record is written atomically once a turn is complete. Its existence makes redelivery of the same message
a no-op, and it is where a waiting `agents send` (or a waiting agent) finds the reply.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from letta_cli.core.config import describe_validation
from letta_cli.core.errors import InvalidFile
from letta_cli.core.models import TurnRecord
from letta_cli.store.fsio import atomic_write, check_dir


class TurnRecords:
    def __init__(self, root: Path):
        self.root = root

    def path(self, message_id: str) -> Path:
        return self.root / f"{message_id}.json"

    def get(self, message_id: str) -> TurnRecord | None:
        """The record, None if there is none; InvalidFile if one exists that does not parse (atomic writes
        never leave one torn, so someone changed it: treating it as absent would run the turn again)."""
        path = self.path(message_id)
        try:
            return TurnRecord.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except ValidationError as exc:
            raise InvalidFile(describe_validation(path, exc)) from None
        except (ValueError, OSError) as exc:
            raise InvalidFile(f"{path}: unreadable turn record: {getattr(exc, 'strerror', None) or exc}") from None

    def exists(self, message_id: str) -> bool:
        return self.path(message_id).exists()

    def discard(self, message_id: str) -> None:
        """Forget a record (a dead letter given another chance must not be found dead again at once)."""
        check_dir(self.root)
        self.path(message_id).unlink(missing_ok=True)

    def commit(self, record: TurnRecord) -> None:
        atomic_write(self.path(record.message_id), record.model_dump_json())
