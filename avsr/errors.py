"""Errors with a clear message for the user (printed without a traceback by the CLI)."""


class UserError(Exception):
    """Bad input or a bad setting: the message names the file and the problem."""
