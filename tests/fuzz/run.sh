#!/bin/sh
# run.sh SECONDS BIN...: run each libFuzzer binary for SECONDS on a scratch copy of its seed
# corpus (tests/fuzz/corpus/NAME), with its dictionary (tests/fuzz/NAME.dict) when there is
# one. Work, log and any crashing input go to build/fuzz/run/NAME/. One line per target;
# on a finding, the end of the log and how to reproduce. Exit 1 if any target failed.
#
# FUZZ_SEED=N fixes libFuzzer's seed (make check uses one, so a run there explores the same
# inputs each time and a finding reproduces; make fuzz leaves it random).
#
# Limits: 10 s per input (a hang is a finding), 1 GiB RSS, and no single allocation above
# 256 MiB (an allocation sized by untrusted input is a finding).
set -u
secs=$1
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
status=0
for bin in "$@"; do
    name=$(basename "$bin")
    work=$root/build/fuzz/run/$name
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/artifacts"
    if [ -d "$root/tests/fuzz/corpus/$name" ]; then
        cp -R "$root/tests/fuzz/corpus/$name/." "$work/corpus/"
    fi
    seeds=$(ls "$work/corpus" | wc -l)
    set -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=256 \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/"
    if [ -n "${FUZZ_SEED:-}" ]; then
        set -- "$@" -seed="$FUZZ_SEED"
    fi
    if [ -f "$root/tests/fuzz/$name.dict" ]; then
        set -- "$@" -dict="$root/tests/fuzz/$name.dict"
    fi
    start=$(date +%s)
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
        UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$bin" "$@" "$work/corpus" > "$work/log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$work/log" | tail -n 1 | sed 's/cov: //')
    found=$(ls "$work/artifacts" | wc -l)
    if [ "$rc" -eq 0 ] && [ "$found" -eq 0 ]; then
        echo "  FUZZ    $name: ok, ${took}s, ${runs:-?} runs, cov ${cov:-?}," \
            "corpus $seeds -> $(ls "$work/corpus" | wc -l)"
    else
        status=1
        echo "  FUZZ    $name: FAILED (exit $rc) after ${took}s; log $work/log"
        grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|fuzz_[a-z]+: check failed)' \
            "$work/log" | head -n 5 | sed 's/^/    /'
        tail -n 30 "$work/log" | sed 's/^/    | /'
        for a in "$work"/artifacts/*; do
            [ -f "$a" ] && echo "    reproduce: $bin $a"
        done
    fi
done
exit $status
