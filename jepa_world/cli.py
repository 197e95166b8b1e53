"""Shared plumbing of the ``python -m jepa_world.<command>`` entry points (the only Hydra users).

Each entry point registers its dataclass schema, lets Hydra compose and type-check the config,
converts it to the dataclass (which validates itself) and calls one library function. User
errors become one line on stderr and exit status 2; nothing else is caught.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from jepa_world.errors import JepaWorldError

T = TypeVar("T")
CONFIG_PATH = "pkg://jepa_world.configs"
EXIT_USER_ERROR = 2


def register_schema(name: str, schema: type) -> None:
    """Make ``schema`` available to configs as ``defaults: [<name>]``."""
    ConfigStore.instance().store(name=name, node=schema)


def to_dataclass(cfg: DictConfig, schema: type[T]) -> T:
    """Turn a composed config into its typed dataclass; validation errors name the field."""
    obj = OmegaConf.to_object(cfg)
    if not isinstance(obj, schema):  # the config was composed without its schema
        obj = schema(**obj)
    return obj


def user_errors_exit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print :class:`JepaWorldError` as ``error: ...`` and exit with status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except JepaWorldError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)

    return wrapper


def group_options(group: str) -> list[str]:
    """Names of the shipped configs of a Hydra group (``env`` -> ``["reach"]``)."""
    folder = importlib.resources.files("jepa_world.configs") / group
    if not folder.is_dir():
        return []
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def check_group_overrides(argv: Sequence[str]) -> None:
    """Fail in one line on ``group=name`` overrides naming no shipped config (``env=foo``).

    Hydra would report the same, but over a dozen lines of search-path details.
    """
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key.startswith(("+", "~", "hydra")) or "." in key:
            continue
        options = group_options(key)
        if options and value not in options:
            print(f"error: unknown {key} {value!r}; known: {', '.join(options)}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)


def check_overrides_compose(config_name: str, argv: Sequence[str]) -> None:
    """Compose the config once up front so a bad override fails in one line naming the field.

    Hydra reports the same errors, but over several lines and with advice about stack traces.
    Skipped when Hydra's own flags are used (``--cfg``, ``--help``, ``--multirun``, ...).
    """
    if any(a.startswith("-") for a in argv):
        return
    overrides = [a for a in argv if not a.startswith(("hydra.", "hydra/", "+hydra"))]
    try:
        with initialize_config_module("jepa_world.configs", version_base="1.3"):
            compose(config_name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else exc
        where = getattr(cause, "full_key", None)
        message = str(getattr(cause, "msg", None) or cause).split("full_key:")[0]
        message = " ".join(message.split())
        print(f"error: {where}: {message}" if where else f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def hydra_argv(argv: list[str], rank: int) -> list[str]:
    """Command line for Hydra: ``run_dir=X`` also becomes Hydra's output dir; under torchrun
    ranks other than 0 get no output dir or log files of their own (Hydra issue #2070)."""
    argv = list(argv)
    run_dirs = [a.split("=", 1)[1] for a in argv if a.startswith("run_dir=")]
    if run_dirs and run_dirs[-1] and not any(a.startswith("hydra.run.dir=") for a in argv):
        argv.append(f"hydra.run.dir={run_dirs[-1]}")
    if rank > 0:
        argv = [a for a in argv if not a.startswith(("hydra.run.dir=", "hydra.output_subdir="))]
        argv += ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=disabled",
                 "hydra/hydra_logging=disabled"]
    return argv


def run(main: Callable[[], Any], config_name: str, run_dir_arg: bool = False) -> None:
    """Run a ``@hydra.main`` function after the one-line checks of its command line: what
    ``python -m jepa_world.<command>`` and the ``jepa-<command>`` console scripts do.

    ``run_dir_arg``: the command takes ``run_dir=`` (training), see :func:`hydra_argv`.
    """
    if run_dir_arg and not any(a.startswith("-") for a in sys.argv[1:]):  # Hydra's own flags
        sys.argv[1:] = hydra_argv(sys.argv[1:], int(os.environ.get("RANK", "0")))
    argv = sys.argv[1:]
    check_group_overrides(argv)
    check_overrides_compose(config_name, argv)
    main()
