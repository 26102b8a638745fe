#!/usr/bin/env bash
# Runs every fuzz target (fuzz/, cargo-fuzz + libFuzzer) for FUZZ_SECONDS each (default 600),
# FUZZ_JOBS at a time (default 1). Needs the nightly toolchain (`rustup toolchain install
# nightly`); installs cargo-fuzz when missing. A finding stops its target and is left in
# fuzz/artifacts/<target>/ (libFuzzer's output in fuzz/artifacts-<target>.log); the script
# then exits non-zero.
#
#   scripts/fuzz.sh                      # all targets, 10 minutes each
#   FUZZ_SECONDS=30 scripts/fuzz.sh sio_packet
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH=${FUZZ_SECONDS:-600}
JOBS=${FUZZ_JOBS:-1}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || mapfile -t TARGETS < <(cargo +nightly fuzz list)
cargo +nightly fuzz build -O

run_one() {
  local t=$1
  mkdir -p "corpus/$t"
  cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
  # -rss_limit_mb / -malloc_limit_mb: an input that makes the code allocate without bound is a
  # finding too. -max_len: larger than any frame the server accepts is not needed to find bugs
  # in the parsers, and keeps the runs fast.
  if cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$SECONDS_EACH" \
      -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=65536 -print_final_stats=1 \
      >"artifacts-$t.log" 2>&1; then
    echo "$t: $(grep -E '^stat::number_of_executed_units' "artifacts-$t.log" | awk '{print $2}') inputs in ${SECONDS_EACH}s, no finding"
  else
    echo "$t: FINDING (see fuzz/artifacts-$t.log and fuzz/artifacts/$t/)"
    return 1
  fi
}

status=0
pids=()
for t in "${TARGETS[@]}"; do
  run_one "$t" & pids+=($!)
  if [ ${#pids[@]} -ge "$JOBS" ]; then wait "${pids[0]}" || status=1; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
