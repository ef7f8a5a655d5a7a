"""``python -m compiler``: the modalc command line. Runs on the client."""

from .cli import main

main()
