"""Errors whose message is the whole story for the user: command-line entry points print
them as one ``error: …`` line and exit non-zero, instead of showing a traceback."""


class UserError(Exception):
    """Bad input or environment that the user can fix; the message says how."""
