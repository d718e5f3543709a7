"""Click commands of a2i.diffusion (registered by a2i.cli)."""

COMMANDS: list = []
