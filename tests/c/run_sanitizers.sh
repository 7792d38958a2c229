#!/usr/bin/env bash
# Sanitizer pass over the C kernels: compiles src_c/dispatch.c and
# src_c/kernels.c (baseline, plus the AVX2 and AVX-512 targets when the CPU
# runs them, so that the run-time dispatch is exercised) with the driver
# tests/c/test_kernels.c under AddressSanitizer + UndefinedBehaviorSanitizer,
# runs it with OMP_NUM_THREADS=1 and 2, runs tests/c/test_half.c (half <-> float32
# conversions of every target) and tests/c/test_math.c under
# the same sanitizers.  Exit status 0 only when there is no sanitizer report
# and every check of the drivers passes.
#
#   tests/c/run_sanitizers.sh            # from anywhere; CC=clang to use clang
#   KEEP=1 tests/c/run_sanitizers.sh     # keep the build directory and logs
set -uo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
CC=${CC:-cc}
out=$(mktemp -d "${TMPDIR:-/tmp}/fastloss-san.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$out"' EXIT

SAN=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
     -fopenmp-simd -fopenmp -g -O1)
WARN=(-Wall -Wno-unused-function)
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

fail=0
step() { printf '== %s\n' "$*"; }

cpu_has() { grep -qw "$1" /proc/cpuinfo 2>/dev/null; }

step "compile ($CC, ${SAN[*]})"
objs=()
defs=()
targets=("baseline:")
if cpu_has avx2 && cpu_has fma && cpu_has f16c; then targets+=("avx2:-mavx2 -mfma -mf16c"); fi
if cpu_has avx512f && cpu_has avx512dq && cpu_has avx512vl && cpu_has avx512bw; then
    targets+=("avx512:-mavx512f -mavx512dq -mavx512vl -mavx512bw -mavx2 -mfma")
fi
# every translation unit in parallel (kernels.c takes a few seconds per target)
pids=()
for t in "${targets[@]}"; do
    name=${t%%:*}
    # shellcheck disable=SC2206
    flags=(${t#*:})
    "$CC" "${SAN[@]}" "${WARN[@]}" "${flags[@]}" -Isrc_c -DFL_TARGET="$name" \
        -c src_c/kernels.c -o "$out/kernels_$name.o" &
    pids+=($!)
    objs+=("$out/kernels_$name.o")
    [ "$name" = baseline ] || defs+=("-DFL_HAVE_${name^^}")
done
"$CC" "${SAN[@]}" "${WARN[@]}" -Isrc_c "${defs[@]}" -c src_c/dispatch.c -o "$out/dispatch.o" &
pids+=($!)
"$CC" "${SAN[@]}" "${WARN[@]}" -Isrc_c -c tests/c/test_kernels.c -o "$out/test_kernels.o" &
pids+=($!)
"$CC" "${SAN[@]}" "${WARN[@]}" -Isrc_c tests/c/test_math.c -lm -o "$out/test_math" &
pids+=($!)
"$CC" "${SAN[@]}" "${WARN[@]}" -Isrc_c -c tests/c/test_half.c -o "$out/test_half.o" &
pids+=($!)
for pid in "${pids[@]}"; do
    wait "$pid" || { echo "compilation failed"; exit 1; }
done
"$CC" "${SAN[@]}" "$out/test_kernels.o" "$out/dispatch.o" "${objs[@]}" -lm \
    -o "$out/test_kernels" || { echo "linking test_kernels failed"; exit 1; }
"$CC" "${SAN[@]}" "$out/test_half.o" "$out/dispatch.o" "${objs[@]}" -lm \
    -o "$out/test_half" || { echo "linking test_half failed"; exit 1; }
echo "targets: ${targets[*]%%:*}"

# a sanitizer report in a log, or a failed run
check_log() {   # name rc log
    local name=$1 rc=$2 log=$3 reports
    reports=$(grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer)' "$log")
    if [ "$reports" -gt 0 ]; then
        echo "SANITIZER REPORT in $name:"
        grep -E -A30 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log" | head -60
        fail=1
    elif [ "$rc" -ne 0 ]; then
        echo "$name: no sanitizer report, but the checks failed (exit $rc):"
        grep -E '^FAIL' "$log" | head -30
        tail -3 "$log"
        fail=1
    else
        tail -1 "$log"
    fi
}

for nt in 1 2; do
    step "test_kernels, OMP_NUM_THREADS=$nt"
    OMP_NUM_THREADS=$nt "$out/test_kernels" > "$out/kernels_$nt.log" 2>&1
    rc=$?
    grep -E '^  (baseline|avx2|avx512) ' "$out/kernels_$nt.log"
    check_log "test_kernels (OMP_NUM_THREADS=$nt)" "$rc" "$out/kernels_$nt.log"
done

step "test_half (conversions of every target)"
"$out/test_half" > "$out/half.log" 2>&1
rc=$?
grep -E '^  ' "$out/half.log"
check_log test_half "$rc" "$out/half.log"

step "test_math"
"$out/test_math" > "$out/math.log" 2>&1
check_log test_math $? "$out/math.log"

echo "sanitizer pass took $(( $(date +%s) - start )) s: $([ $fail = 0 ] && echo OK || echo FAILED)"
exit $fail
