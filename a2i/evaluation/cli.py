"""Click commands of a2i.evaluation (registered by a2i.cli)."""

COMMANDS: list = []
