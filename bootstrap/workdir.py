"""The work directory: the machine's Jupyter root, where notebooks, results and uploads live. Named here once."""

WORKDIR = "~/notebooks"
