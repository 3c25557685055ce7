#!/usr/bin/env bash
# Run the image fuzzers (docs/FUZZING.md): every target, or those named, for SECONDS each, one
# at a time, one worker each. Builds them first with cargo-fuzz on the stable toolchain
# (-s none: sanitizers need nightly; debug assertions and overflow checks are on).
#
#   fuzz/run.sh SECONDS [target...]
#
# Per target it prints the executions, executions per second and the result (with the input
# that failed, to replay with `fuzz/target/x86_64-unknown-linux-gnu/release/TARGET FILE`);
# the last line is `N passed, M failed`. A panic, an input running past 10 s (-timeout) and
# a process over 2 GiB (-rss_limit_mb) are failures. Exit status 1 if any target failed.
# FUZZ_RUNS=N stops a target after N executions (libFuzzer's -runs) if that comes first.

set -u
cd "$(dirname "$0")"

secs=${1:-}
shift || true
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -eq 0 ]; then
    echo "usage: fuzz/run.sh SECONDS [target...]" >&2
    exit 2
fi
all=(mount recovery fsck log_replay dir_index)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: run make deps (or cargo install cargo-fuzz --locked)" >&2
    exit 2
fi
start=$(date +%s)
mkdir -p target
if ! cargo fuzz build -s none >target/build.log 2>&1; then
    tail -30 target/build.log >&2
    echo "building the fuzz targets failed (fuzz/target/build.log)" >&2
    exit 2
fi
echo "built the fuzz targets in $(($(date +%s) - start)) s"

bin=target/x86_64-unknown-linux-gnu/release
passed=0
failed=0
for t in "${targets[@]}"; do
    if [ ! -x "$bin/$t" ]; then
        echo "$t: no such fuzz target (targets: ${all[*]})"
        failed=$((failed + 1))
        continue
    fi
    mkdir -p "corpus/$t" "artifacts/$t"
    # The seed inputs: edits of images the real code builds at start-up (nothing committed).
    ZPMFS_FUZZ_SEEDS_OUT="corpus/$t" "$bin/$t" >/dev/null 2>&1
    log="artifacts/$t/last-run.log"
    TIMEFORMAT='%U %S'
    began=$(date +%s)
    { time timeout $((secs + 120)) "$bin/$t" "corpus/$t" -max_total_time="$secs" ${FUZZ_RUNS:+-runs="$FUZZ_RUNS"} -timeout=10 \
        -rss_limit_mb=2048 -max_len=256 -workers=1 -print_final_stats=1 -artifact_prefix="artifacts/$t/" \
        >"$log" 2>&1; } 2>"artifacts/$t/cpu"
    rc=$?
    # On a shared machine the wall-clock rate says little: also per second of CPU time used.
    cpu=$(awk '{ printf "%.1f", $1 + $2 }' "artifacts/$t/cpu")
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    if [ $rc -eq 0 ]; then
        result="passed"
        passed=$((passed + 1))
    else
        found=$(sed -n "s/.*Test unit written to //p" "$log" | tail -1)
        why=$(grep -m1 -E "panicked at|ERROR: libFuzzer" "$log" | sed 's/^==[0-9]*== //')
        result="FAILED (exit $rc): ${why:-see fuzz/$log}${found:+; input fuzz/$found}"
        failed=$((failed + 1))
    fi
    per_cpu=$(awk -v n="${execs:-0}" -v c="$cpu" 'BEGIN { printf "%d", (c > 0 ? n / c : 0) }')
    took=$(($(date +%s) - began))
    echo "$t: ${execs:-0} executions in ${took} s (${rate:-0}/s; ${per_cpu}/s of CPU, ${cpu} s CPU): $result"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
