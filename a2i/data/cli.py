"""Click commands of a2i.data (registered by a2i.cli)."""

COMMANDS: list = []
