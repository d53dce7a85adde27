#!/usr/bin/env bash
# Run every benchmark, one after another (never in parallel: they measure the machine), then print all the
# RATIO lines together. Sets up the locked environment first (scripts/setup.sh).
#   bench/run_all.sh            full sizes (about 8 minutes on 2 cores)
#   bench/run_all.sh --quick    small sizes, to check the scripts work (under a minute)
# The load average is printed before each benchmark. The benchmark that just ended accounts for up to ~1.5
# of the 1-minute figure; well above that on 2 cores, something else is competing for the CPU or the disk
# and the figures that follow are suspect (check with `ps`, rerun, and report the spread).
# Exit status: non-zero only if a benchmark crashed; a missed target is reported, not an error.
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh  # the locked environment, bench extra included

quick=0
[ "${1:-}" = "--quick" ] && quick=1
args() {  # per-benchmark arguments for --quick
  [ $quick = 1 ] || return 0
  case $1 in
    queue_throughput) echo "--n 500 --rounds 2 --producers 2 --no-strace" ;;
    turn_overhead) echo "--turns 60 --rounds 2" ;;
    broadcast) echo "--sizes 10,100" ;;
    startup) echo "--reps 5" ;;
    scale) echo "--agents 2000 --reps 1" ;;
    send) echo "--reps 3 --cold-reps 1 --scale 2000" ;;
  esac
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=()
for bench in prompt_overhead startup queue_throughput turn_overhead broadcast scale send; do
  echo
  echo "-- load average before $bench: $(cut -d' ' -f1-3 /proc/loadavg)"
  # shellcheck disable=SC2046
  if ! .venv/bin/python "bench/$bench.py" $(args $bench) | tee -a "$log"; then
    failed+=("$bench")
  fi
done

echo
echo "== summary"
grep '^RATIO' "$log" || true
if [ ${#failed[@]} -gt 0 ]; then
  echo "crashed: ${failed[*]}" >&2
  exit 1
fi
