"""``python -m nbremote``: the command line (how the embedded runner is started, too)."""

from .cli import main

main()
