"""Letta Agent Files (.af): import them into the workspace and export agents as them.

An agent file is JSON with the top-level keys agents, groups, blocks, files, sources, tools, mcp_servers,
metadata and created_at; ids inside it are file-local ("agent-0", "block-1"). docs/agent-files.md has the
field mapping.

  format    the models of the file, read by import and filled by export; bytes <-> models
  names     Letta's names and tags into our rule, credentials out of URLs
  messages  Letta's messages <-> our history lines
  plan      import, step one: map and check everything, write nothing
  importer  import, step two: read the file, write the plan, undo on failure
  exporter  export: the workspace's agents as an agent file

Imports the core, store and tools.registry layers only.
"""

from letta_cli.app.agentfile.exporter import ExportSummary, export_agents, export_to
from letta_cli.app.agentfile.format import MAX_FILE_BYTES, AgentFile, dump_agent_file, parse_agent_file
from letta_cli.app.agentfile.importer import (
    ImportResult,
    apply_import,
    import_agent_file,
    import_source,
    read_source,
)
from letta_cli.app.agentfile.names import normalise_name, parse_renames, strip_credentials
from letta_cli.app.agentfile.plan import ImportPlan, plan_import

__all__ = [
    "MAX_FILE_BYTES",
    "AgentFile",
    "ExportSummary",
    "ImportPlan",
    "ImportResult",
    "apply_import",
    "dump_agent_file",
    "export_agents",
    "export_to",
    "import_agent_file",
    "import_source",
    "normalise_name",
    "parse_agent_file",
    "parse_renames",
    "plan_import",
    "read_source",
    "strip_credentials",
]
