#!/bin/sh
# Runs schemathesis (PyPI) against a running agent on TCP, by hand. The same
# run is part of `cargo test`: crates/sluice/tests/agent_schemathesis.rs
# starts the agent itself.
# Usage: run.sh http://127.0.0.1:7480 TOKEN_FILE [MAX_EXAMPLES]
# Start the agent first, e.g. on a synthetic tree:
#   sluice serve --state-dir D --sysfs-root S --vf-reset claim-only \
#     --tcp 127.0.0.1:7480 --token-file TOKEN_FILE
# schemathesis: .ci/run installs it into /opt/sluice-ci-venv.
set -eu
here=$(dirname "$0")
st=${SLUICE_SCHEMATHESIS:-schemathesis}
[ -x /opt/sluice-ci-venv/bin/schemathesis ] && [ -z "${SLUICE_SCHEMATHESIS:-}" ] && st=/opt/sluice-ci-venv/bin/schemathesis
export SCHEMATHESIS_HOOKS=hooks
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
# One worker: the coverage phase of schemathesis 4.32 hits a Hypothesis
# race ("AST constructor recursion depth mismatch") with two.
exec "$st" --no-color run "$here/../openapi.json" -u "$1" \
  -H "Authorization: Bearer $(cat "$2")" \
  --checks not_a_server_error,four_xx_names_the_field \
  --phases examples,coverage,fuzzing,stateful --max-examples "${3:-100}" -w 1
