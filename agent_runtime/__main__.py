"""``python -m agent_runtime``: the task command of every compiled Modal function.

Runs inside allocations; standard library only at start-up (cloudpickle is
imported only when a value needs it). See ``args`` for the command line,
``shim`` for the supervisor, ``worker`` for the process that runs user code,
``web`` for ``--serve web`` (a web endpoint's server) and ``exitcodes`` for
what the exit status means.
"""

from __future__ import annotations

import sys

from .args import parse_args
from .shim import run


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.serve is not None:  # a listening allocation: its heavy imports (uvicorn ...) stay out of plain calls
        from .web import serve

        return serve(opts)
    return run(opts)


if __name__ == "__main__":
    sys.exit(main())
