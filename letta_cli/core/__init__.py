"""core: errors, names, ids, settings and the pydantic models of every on-disk format.

May import nothing of letta_cli: everything else builds on it.
"""
