#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 300) one after the other and
# prints each one's executions. Usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-300}; shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=($(ls fuzz_targets | sed 's/\.rs$//'))
python3 seed.py
for t in "${targets[@]}"; do
    log=$(mktemp)
    RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1 || { tail -40 "$log"; exit 1; }
    execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
    cov=$(grep -E '^#[0-9]+.*DONE' "$log" | grep -oE 'cov: [0-9]+' | head -1)
    echo "$t: ${execs} executions in ${secs} s, ${cov}, no crash"
    rm -f "$log"
done
