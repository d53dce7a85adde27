"""app: every command as a library call — send, broadcast, run, agents, blocks, inspection, agent files, the
demo. The CLI only parses arguments, calls these and renders what they return.

May import every layer below it (core, store, model, ports, tools, engine).
"""
