"""Errors a user caused: the CLI prints their message on one line and exits with status 2."""


class UserError(Exception):
    """Bad input: a malformed plan or config, unknown task or model, a broken data file."""
