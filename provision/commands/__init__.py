"""The commands' core: the CLI parses, these decide and act."""
