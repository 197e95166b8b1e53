"""Shared plumbing of the ``python -m jepa_world.<command>`` entry points (the only Hydra users).

Each entry point registers its dataclass schema, lets Hydra compose and type-check the config,
converts it to the dataclass (which validates itself) and calls one library function. User
errors become one line on stderr and exit status 2; nothing else is caught.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib.resources
import io
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from jepa_world.errors import EXIT_USER_ERROR, ConfigError, JepaWorldError

T = TypeVar("T")
CONFIG_PATH = "pkg://jepa_world.configs"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
#: Output folders named by ``hydra.run.dir=`` and whether they existed before the command ran
#: (a rejected run removes only a folder it created); filled by :func:`run`.
_OUTPUT_EXISTED: dict[str, bool] = {}


def register_schema(name: str, schema: type) -> None:
    """Make ``schema`` available to configs as ``defaults: [<name>]``."""
    ConfigStore.instance().store(name=name, node=schema)


def to_dataclass(cfg: DictConfig, schema: type[T]) -> T:
    """Turn a composed config into its typed dataclass; validation errors name the field.

    No setting takes NaN or infinity (``optim.lr=inf``): they are refused here for every field.
    A ``ValueError`` / ``TypeError`` of a config's own checks becomes a :class:`ConfigError`.
    """
    check_finite(OmegaConf.to_container(cfg, resolve=True))
    try:
        obj = OmegaConf.to_object(cfg)
        if not isinstance(obj, schema):  # the config was composed without its schema
            obj = schema(**obj)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, JepaWorldError):
            raise
        raise ConfigError(" ".join(str(exc).split())) from None
    return obj


def check_finite(value: Any, where: str = "") -> None:
    """Raise :class:`ConfigError` naming the first NaN or infinite number in ``value``."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: must be a finite number, got {value}")
    items = value.items() if isinstance(value, dict) else \
        enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        check_finite(item, f"{where}.{key}" if where and isinstance(key, str) else
                     f"{where}[{key}]" if where else str(key))


#: What to do after Ctrl-C, per command; ``{out}`` is the run's output folder.
RESUME_HINTS = {
    "collect": "re-run the same command to collect only the missing episodes",
    "pretrain": "re-run with run_dir={out} to resume from its last checkpoint",
    "train_wm": "re-run with run_dir={out} to resume from its last checkpoint",
    "probe": "re-run the same command to start again (collected data and cached features are "
             "reused)",
    "plan": "re-run the same command to start again (summary.json is written at the end)",
}
#: ``OSError`` numbers that say the user's disk or paths are at fault, not the code.
_ENVIRONMENT_ERRNOS = {errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS,
                       errno.EDQUOT, errno.EISDIR}


def interrupted_exit(hint: str) -> NoReturn:
    print(f"interrupted; {hint}", file=sys.stderr)
    sys.exit(EXIT_INTERRUPTED)


def user_errors_exit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a ``@hydra.main`` function: :class:`JepaWorldError` and the ``OSError`` of unusable
    paths (a parent that is a file, no permission, disk full) print as ``error: ...`` and exit
    with status 2, removing the output folder if the rejected run created it and wrote nothing
    there; Ctrl-C prints how to resume and exits with 130; what the command prints also goes to
    Hydra's job log (``<command>.log``)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        hydra = HydraConfig.get()
        out = Path(hydra.runtime.output_dir)
        try:
            with contextlib.redirect_stdout(_tee_to_job_log(sys.stdout)):
                return fn(*args, **kwargs)
        except KeyboardInterrupt:
            hint = RESUME_HINTS.get(hydra.job.config_name, "re-run the same command")
            interrupted_exit(hint.format(out=out))
        except (JepaWorldError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno not in _ENVIRONMENT_ERRNOS:
                raise
            if not _OUTPUT_EXISTED.get(str(out), False):  # default: a new timestamped folder
                remove_if_unused(out, hydra.job.name)
            message = str(exc) if isinstance(exc, JepaWorldError) else \
                f"cannot use {exc.filename}: {exc.strerror}"
            print(f"error: {message}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)

    return wrapper


def remove_if_unused(out: Path, job_name: str) -> None:
    """Remove the output folder Hydra made for a rejected run: its ``.hydra`` record and empty
    log go, and the folder too if nothing else is in it."""
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        with contextlib.suppress(OSError):
            (out / ".hydra" / name).unlink()
    log = out / f"{job_name}.log"
    with contextlib.suppress(OSError):
        if log.stat().st_size == 0:
            log.unlink()
    folders = [out / ".hydra", out]
    if str(out) not in _OUTPUT_EXISTED:  # Hydra's default outputs/<cmd>/<time>: its parents too
        folders += [out.parent, out.parent.parent]
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if empty


class _Tee(io.TextIOBase):
    """A text stream that writes to ``stream`` and to the streams of logging file handlers."""

    def __init__(self, stream: Any, handlers: list[logging.FileHandler]):
        self._stream, self._handlers = stream, handlers

    def write(self, text: str) -> int:
        self._stream.write(text)
        for handler in self._handlers:
            with contextlib.suppress(OSError, ValueError):
                handler.acquire()
                try:
                    handler.stream.write(text)
                    handler.stream.flush()
                finally:
                    handler.release()
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()


def _tee_to_job_log(stream: Any) -> Any:
    """``stream``, also copied into Hydra's job log file when it has one."""
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    return _Tee(stream, handlers) if handlers else stream


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


def check_overrides_compose(config_name: str, argv: Sequence[str],
                            schema: type | None = None) -> None:
    """Compose the config once up front so a bad override fails in one line naming the field,
    before Hydra creates an output folder; with ``schema`` the config is also converted to its
    dataclass, which validates the values (``episodes=-1``).

    Hydra reports the same errors, but over several lines and with advice about stack traces.
    Skipped when Hydra's own flags are used (``--cfg``, ``--help``, ``--multirun``, ...).
    """
    if any(a.startswith("-") for a in argv):
        return
    overrides = [a for a in argv if not a.startswith(("hydra.", "hydra/", "+hydra"))]
    try:
        with initialize_config_module("jepa_world.configs", version_base="1.3"):
            cfg = compose(config_name, overrides=overrides)
        if schema is not None:
            to_dataclass(cfg, schema)
    except JepaWorldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except (HydraException, OmegaConfBaseException) as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else exc
        where = getattr(cause, "full_key", None)
        message = str(getattr(cause, "msg", None) or cause).split("full_key:")[0]
        message = " ".join(message.split())
        print(f"error: {where}: {message}" if where else f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def check_output_dir(path: Path) -> None:
    """Fail in one line if Hydra could not create the output folder ``path`` (``run_dir=`` or
    ``hydra.run.dir=``): a parent is a file, or the nearest existing one is not writable."""
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problem = None
    if not existing.is_dir():
        problem = f"{existing} is not a folder"
    elif existing != path.absolute() and not os.access(existing, os.W_OK | os.X_OK):
        problem = f"{existing} is not writable"
    if problem:
        print(f"error: cannot create the output folder {path}: {problem}", file=sys.stderr)
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


def run(main: Callable[[], Any], config_name: str, run_dir_arg: bool = False,
        schema: type | None = None) -> None:
    """Run a ``@hydra.main`` function after the one-line checks of its command line: what
    ``python -m jepa_world.<command>`` and the ``jepa-<command>`` console scripts do.

    ``run_dir_arg``: the command takes ``run_dir=`` (training), see :func:`hydra_argv`;
    ``schema``: the command's config dataclass, validated before Hydra makes an output folder.
    """
    if run_dir_arg and not any(a.startswith("-") for a in sys.argv[1:]):  # Hydra's own flags
        sys.argv[1:] = hydra_argv(sys.argv[1:], int(os.environ.get("RANK", "0")))
    argv = sys.argv[1:]
    try:
        check_group_overrides(argv)
        check_overrides_compose(config_name, argv, schema)
        run_dirs = [a.split("=", 1)[1] for a in argv if a.startswith("hydra.run.dir=")]
        if run_dirs:
            check_output_dir(Path(run_dirs[-1]))
            _OUTPUT_EXISTED[str(Path(run_dirs[-1]).resolve())] = Path(run_dirs[-1]).exists()
        main()
    except KeyboardInterrupt:  # before the job started (inside it, user_errors_exit says more)
        interrupted_exit("nothing was written; re-run the same command")
