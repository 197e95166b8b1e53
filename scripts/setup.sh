#!/usr/bin/env bash
# Install everything jepa_world needs into the current Python environment. Idempotent: a second
# run only checks. Debian/Ubuntu system packages are installed with apt-get when missing.
#   PYTHON=python3.11 bash scripts/setup.sh     # choose the interpreter (default: python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

# Headless OpenGL for MuJoCo: Mesa EGL (the default on CPU machines) and OSMesa (fallback).
GL_PACKAGES=(libegl1 libopengl0 libgl1-mesa-dri libosmesa6)
missing=()
if command -v dpkg >/dev/null 2>&1; then
  for pkg in "${GL_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
fi
if ((${#missing[@]})); then
  echo "setup: installing system packages: ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  log=$(mktemp)
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
         $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log"; echo "setup: apt-get failed; install ${missing[*]} yourself" >&2; exit 1
  fi
  rm -f "$log"
fi

# PyTorch: keep whatever build is installed (a CUDA one on GPU hosts); otherwise the CPU-tested
# release. pyproject.toml only asks for torch>=2.4.
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  "$PY" -m pip install -q "torch==2.13.0"
fi

# The package (editable), its test tools and the optional clients the tests exercise
# (stable-baselines3, gymnasium-robotics, transformers, diffusers); skipped when nothing changed
# since the last run.
stamp=".setup-stamp"
extras="dev,video,rl,robotics,hf,diffusion"
want="$("$PY" -c 'import sys; print(sys.executable)') $(sha256sum pyproject.toml | cut -c1-16) $PWD $extras"
here_installed() {  # does `import jepa_world` resolve to this checkout?
  "$PY" -c "import os, sys, jepa_world.envs as e; sys.exit(not os.path.realpath(e.__file__)
    .startswith(os.path.realpath('$PWD') + os.sep))" >/dev/null 2>&1
}
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! here_installed; then
  "$PY" -m pip install -q -e ".[$extras]"
  echo "$want" > "$stamp"
fi
