"""User-facing errors: the command-line entry points print these as one line and exit non-zero."""


class JepaWorldError(Exception):
    """Bad input from the user (config, files, shapes): the message says what and how to fix it."""


class ConfigError(JepaWorldError, ValueError):
    """A config value is invalid; the message starts with the field's dotted name."""


class DatasetError(JepaWorldError):
    """A dataset directory is missing, corrupt, or was collected with other settings."""
