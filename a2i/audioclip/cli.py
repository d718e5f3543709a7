"""Click commands of a2i.audioclip (registered by a2i.cli)."""

COMMANDS: list = []
