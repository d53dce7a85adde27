"""store: the workspace on disk and every state file in it — agent definitions, memory blocks, the queue,
turn records, histories and the trace. Each change goes through its store: atomic writes, locked
read-modify-writes, single-write appends.

May import letta_cli.core only.
"""
