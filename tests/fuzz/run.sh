#!/bin/bash
# run.sh - a bounded libFuzzer run of every fuzz target (`make fuzz-run`).
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS [JOBS] [TARGET...]
#
# Runs each target of BUILD_DIR (a -DALIGND_FUZZ=ON build; every
# tests/fuzz/fuzz_*.c when no TARGET is named) for SECONDS
# (-max_total_time), JOBS at a time, on a copy of its corpus in a temporary
# folder: the repository's corpus is never written. ASan, UBSan (halting on
# the first report) and leak detection are on. Prints one line per target
# with the inputs executed (libFuzzer's stat::number_of_executed_units). A
# target that crashes, leaks, times out (-timeout, seconds per input) or
# runs out of memory fails the run: its report is printed, and the input
# libFuzzer wrote is kept in BUILD_DIR/fuzz-artifacts/<target>/ and printed
# as base64 (when small), so a CI log alone is enough to reproduce it. To
# keep it as a regression test, save it as tests/fuzz/corpus/<target>/crash-...
# (see tests/fuzz/README.md).
set -u

die() { echo "fuzz-run: $*" >&2; exit 2; }
[ $# -ge 2 ] || die "usage: $0 BUILD_DIR SECONDS [JOBS] [TARGET...]"
build=$1 seconds=$2 jobs=${3:-2}
shift $(( $# >= 3 ? 3 : 2 ))
src=$(cd "$(dirname "$0")" && pwd)
case $seconds in '' | *[!0-9]*) die "SECONDS must be a whole number, not '$seconds'" ;; esac
case $jobs in '' | *[!0-9]* | 0) die "JOBS must be a positive number, not '$jobs'" ;; esac

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in "$src"/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
for t in "${targets[@]}"; do
    [ -x "$build/tests/fuzz/$t" ] || die "$build/tests/fuzz/$t is missing (build the target fuzz_targets of a -DALIGND_FUZZ=ON build)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/alignd-fuzz.XXXXXX") || die "cannot make a temporary folder"
trap 'rm -rf "$work"' EXIT
trap 'kill $(jobs -p) 2>/dev/null; exit 130' INT TERM
artifacts="$build/fuzz-artifacts"
# halt_on_error: UBSan's reports are findings, not warnings
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

run_one() {
    local t=$1 dir="$work/$1"
    mkdir -p "$dir/corpus" "$dir/artifacts"
    [ -d "$src/corpus/$t" ] && cp -R "$src/corpus/$t/." "$dir/corpus/"
    local dict=()
    if [ -f "$src/$t.dict" ]; then dict=("-dict=$src/$t.dict")
    elif [[ $t == fuzz_body_* ]]; then dict=("-dict=$src/body.dict"); fi
    "$build/tests/fuzz/$t" "$dir/corpus" -max_total_time="$seconds" -print_final_stats=1 \
        -timeout=25 -rss_limit_mb=2048 -artifact_prefix="$dir/artifacts/" "${dict[@]}" \
        >"$dir/log" 2>&1
    echo $? >"$dir/rc"
}

start=$(date +%s)
echo "fuzz-run: ${#targets[@]} targets, ${seconds} s each, $jobs at a time"
running=0
for t in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
    run_one "$t" &
    running=$((running + 1))
done
wait

failed=0 total=0
printf '%-28s %12s %10s %9s  %s\n' target executions exec/s corpus result
for t in "${targets[@]}"; do
    dir="$work/$t" rc=$(cat "$work/$t/rc" 2>/dev/null || echo 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
    units=$(find "$dir/corpus" -type f | wc -l)
    result=ok
    if [ "$rc" != 0 ]; then result="FAILED (exit $rc)"; failed=$((failed + 1)); fi
    total=$((total + ${execs:-0}))
    printf '%-28s %12s %10s %9s  %s\n' "$t" "${execs:-?}" "${speed:-?}" "$units" "$result"
done
echo "fuzz-run: $total executions in $(( $(date +%s) - start )) s"

for t in "${targets[@]}"; do
    [ "$(cat "$work/$t/rc" 2>/dev/null || echo 1)" = 0 ] && continue
    echo
    echo "==== $t: its report ($(grep -m1 -o 'Seed: [0-9]*' "$work/$t/log"))"
    # from the sanitizer's or libFuzzer's first complaint on, else the end
    report=$(grep -n -m1 -E '^==[0-9]+==ERROR|runtime error:|^ERROR: libFuzzer|^==[0-9]+== ERROR: libFuzzer' \
        "$work/$t/log" | cut -d: -f1)
    if [ -n "$report" ]; then
        tail -n +"$report" "$work/$t/log" | sed '/^Shadow bytes around/,/^  Right alloca redzone/d' | head -n 120
    else
        tail -n 60 "$work/$t/log"
    fi
    mkdir -p "$artifacts/$t"
    for a in "$work/$t/artifacts/"*; do
        [ -f "$a" ] || continue
        cp "$a" "$artifacts/$t/"
        echo "---- input kept as $artifacts/$t/$(basename "$a") ($(wc -c <"$a") bytes)"
        if [ "$(wc -c <"$a")" -le 8192 ]; then
            echo "---- base64 (decode with: base64 -d > tests/fuzz/corpus/$t/$(basename "$a")):"
            base64 -w 76 "$a"
        fi
    done
done
if [ "$failed" -ne 0 ]; then
    echo "fuzz-run: $failed of ${#targets[@]} targets FAILED" >&2
    exit 1
fi
echo "fuzz-run: all ${#targets[@]} targets passed"
