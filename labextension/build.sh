#!/bin/sh
# `make labext`: the prebuilt JupyterLab extension, into server_ext/labextension (which a wheel
# ships as share/jupyter/labextensions/nbremote), with node from the machine's packages and
# jlpm (yarn) from the venv's jupyterlab. Run from the repository root; VENV names the venv.
set -eu
VENV=${VENV:-.venv}
BIN=$PWD/$VENV/bin
if ! command -v node >/dev/null; then
	if command -v apt-get >/dev/null; then
		apt-get install -y -qq nodejs >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs >/dev/null)
	else
		echo "node is missing: install Node.js 18 or newer to build the JupyterLab extension" >&2
		exit 1
	fi
fi
cd labextension
"$BIN/jlpm" install --immutable >/dev/null
"$BIN/jlpm" tsc --project tsconfig.json
# Built against the JupyterLab of the venv (its staging folder holds the shared packages' versions).
STAGING=$("$BIN/python" -c 'import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))')
node node_modules/@jupyterlab/builder/lib/build-labextension.js --core-path "$STAGING" . >/dev/null
echo "built the JupyterLab extension into server_ext/labextension"
