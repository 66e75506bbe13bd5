"""``python -m flows.engine`` prints the flow JSON Schema (regenerates the committed copy)."""

from .schema import main

main()
