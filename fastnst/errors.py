"""Errors whose message is the whole story for the user: command-line entry points print
them as one ``error: …`` line and exit non-zero, instead of showing a traceback."""

import sys
from collections.abc import Callable


class UserError(Exception):
    """Bad input or environment that the user can fix; the message says how."""


def run_command(body: Callable[[], object], interrupted: str) -> int:
    """Run a command-line tool's body: user errors become one ``error:`` line and exit 1,
    Ctrl-C exits 130 saying what was not written, success prints ``wrote <result>``."""
    try:
        result = body()
    except (UserError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"error: interrupted; {interrupted}", file=sys.stderr)
        return 130
    print(f"wrote {result}")
    return 0
