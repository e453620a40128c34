#!/bin/sh
# `make lab`: JupyterLab of the project's venv, opened on notebooks/quickstart.ipynb.
#
# The "Python (nbremote)" kernel goes into the venv's own prefix, never the user's home. Jupyter
# run from a venv prefers the venv's kernels, so the quickstart's "python3" is the venv's Python
# even where the user's home holds a "python3" kernel of a Python without nbremote.
# Extra arguments go to `jupyter lab` (the test passes a port and a token).
set -eu
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
"$VENV/bin/python" -m ipykernel install --sys-prefix --name nbremote \
	--display-name "Python (nbremote)" >/dev/null
# No display (ssh, a container): Jupyter prints the URL with its token instead of a browser.
if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ "$(uname -s)" != Darwin ]; then
	set -- --no-browser "$@"
fi
# Containers and CI run as root, where Jupyter refuses to start without this (loopback, token).
if [ "$(id -u)" = 0 ]; then
	set -- --allow-root "$@"
fi
# The printed URL (and the browser) land on the quickstart; new notebooks get the nbremote kernel.
exec "$VENV/bin/jupyter" lab --ip=127.0.0.1 --notebook-dir="$PWD" \
	--LabApp.default_url=/lab/tree/notebooks/quickstart.ipynb \
	--MappingKernelManager.default_kernel_name=nbremote "$@"
