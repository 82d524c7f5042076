#!/bin/sh
# Runs schemathesis (PyPI) against a running agent on TCP.
# Usage: run.sh http://127.0.0.1:7480 TOKEN_FILE [MAX_EXAMPLES]
# Start the agent first, e.g. on a synthetic tree:
#   sluice serve --state-dir D --sysfs-root S --vf-reset claim-only \
#     --tcp 127.0.0.1:7480 --token-file TOKEN_FILE
set -eu
here=$(dirname "$0")
export SCHEMATHESIS_HOOKS=hooks
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
exec schemathesis run "$here/../openapi.json" -u "$1" \
  -H "Authorization: Bearer $(cat "$2")" \
  --checks not_a_server_error,four_xx_names_the_field \
  --phases examples,fuzzing,stateful --max-examples "${3:-100}" -w 2
