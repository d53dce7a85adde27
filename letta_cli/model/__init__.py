"""model: where model calls go (endpoint resolution), the openai-SDK client, and the embedded local model
server. The openai import happens here, on paths that call a model, never at CLI start-up.

May import letta_cli.core and letta_cli.store.
"""
