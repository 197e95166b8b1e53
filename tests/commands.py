"""Running the ``python -m jepa_world.<command>`` entry points in tests: in this process (fast:
no interpreter start, no torch import) or as a real subprocess."""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
from pathlib import Path

from tests.conftest import PYTHON, python_env


def call(name: str, *argv: str, capsys) -> tuple[int, str, str]:
    """Run ``jepa_world.<name>.cli()`` with ``argv`` in-process, as the console script does;
    returns (exit status, stdout, stderr)."""
    module = importlib.import_module(f"jepa_world.{name}")
    saved = sys.argv
    sys.argv = [name, *argv]
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    capsys.readouterr()
    try:
        module.cli()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = saved
        for handler in root.handlers:  # Hydra's job logging: leave logging as it was
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
    out, err = capsys.readouterr()
    return code, out, err


def command(name: str, *args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", f"jepa_world.{name}", *args], cwd=cwd,
                          env=dict(python_env(), OMP_NUM_THREADS="1"), capture_output=True,
                          text=True, timeout=timeout)


def assert_one_line_error(code: int, err: str, start: str) -> None:
    """Exit status 2, one line on stderr starting with ``start``, no traceback."""
    assert code == 2, err[-2000:]
    assert err.startswith(start), err[-2000:]
    assert len(err.strip().splitlines()) == 1, err
