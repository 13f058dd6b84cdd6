"""``python -m reeng`` runs the CLI."""

from reeng.cli import main

main()
