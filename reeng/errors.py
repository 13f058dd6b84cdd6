"""The one error type users see: a message naming the problem, printed as one line."""


class ReengError(Exception):
    """A problem with the user's input or environment that they can fix.

    The CLI prints ``error: <message>`` and exits with status 2; no traceback, and never a token
    (callers build messages from names and values, not from credentials).
    """
