# Sourced by install.sh, demo.sh and test.sh: sets PY, the Python everything is installed into.
#   $PYTHON, if set: that interpreter, as it is;
#   inside a virtual environment (activated, or its python first on PATH): that environment;
#   otherwise: the repository's own .venv, created on first use (a system Python such as
#   Debian's /usr/bin/python3 is "externally managed" and refuses pip installs).
if [ -n "${PYTHON:-}" ]; then
  PY=$PYTHON
elif [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
  PY=$VIRTUAL_ENV/bin/python
elif python3 -c 'import sys; sys.exit(0 if sys.prefix != sys.base_prefix else 1)' 2>/dev/null; then
  PY=$(python3 -c 'import sys; print(sys.executable)')
else
  if [ ! -x .venv/bin/python ]; then
    echo "dpgraph: creating the virtual environment .venv (python3 $(python3 -c 'import platform; print(platform.python_version())'))"
    rm -rf .venv
    if ! python3 -m venv .venv 2>/dev/null; then
      rm -rf .venv
      # Debian/Ubuntu ship venv separately (python3-venv); install it where we may
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "dpgraph: python3 has no venv module; installing python3-venv with apt-get"
        ver=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        apt-get update -qq && { apt-get install -y -qq "python$ver-venv" >/dev/null 2>&1 ||
                                apt-get install -y -qq python3-venv >/dev/null; }
      fi
      python3 -m venv .venv || {
        echo "dpgraph: error: 'python3 -m venv .venv' failed; install your distribution's venv package" \
             "(Debian/Ubuntu: sudo apt-get install python3-venv), or run inside a virtual environment," \
             "or set PYTHON=/path/to/python" >&2
        exit 2
      }
    fi
  fi
  PY=$PWD/.venv/bin/python
fi
export PYTHON=$PY
