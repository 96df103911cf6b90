"""The commands' core, one module per verb family: each asks its target and access, never which kind they are."""
