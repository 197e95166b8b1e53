"""User-facing errors: the command-line entry points print these as one line and exit non-zero."""

EXIT_USER_ERROR = 2  #: the exit status of a command stopped by bad input


class JepaWorldError(Exception):
    """Bad input from the user (config, files, shapes): the message says what and how to fix it."""


class ConfigError(JepaWorldError, ValueError):
    """A config value is invalid; the message starts with the field's dotted name."""


class DatasetError(JepaWorldError):
    """A dataset directory is missing, corrupt, or was collected with other settings."""


def main_reporting_user_errors(main) -> None:
    """Run a script's ``main()``; a :class:`JepaWorldError` ends it with its message as one
    ``error:`` line on stderr and exit status 2 instead of a traceback (for ``bench/`` scripts,
    which have no Hydra entry point to do it)."""
    import sys
    try:
        main()
    except JepaWorldError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
