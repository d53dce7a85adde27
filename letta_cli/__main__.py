from letta_cli.cli.main import run

run()
