#!/usr/bin/env bash
# The plain alternative fetchquant is compared with (docs/benchmarks.md B1), as a user would write it:
# `xargs -P <threads>` over the runs; each run: curl its files, fasterq-dump an .sra, kallisto quant, rm.
# No verification, no resume, no retries, no disk floor. The only additions are timestamps (one `date`
# per step) so slot utilisation can be computed the same way as for fetchquant.
#
# usage: baseline.sh THREADS JOBS_FILE READS_DIR EVENTS_LOG
#   JOBS_FILE, one run per line (no spaces in paths):
#     RUN single|paired ena|sra INDEX QUANT_DIR KALLISTO_THREADS FRAGMENT_LENGTH FRAGMENT_SD URL [URL2]
#   EVENTS_LOG gets lines `RUN EVENT EPOCH_MS` (dl-start, dl-end, convert-end, quant-end, done).
# With CPU_LOG set (B5), each tool's CPU is appended there as `RUN TOOL <user> <system>` (bash `times` of a
# subshell that ran only that tool, so exact, including its threads).
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 THREADS JOBS_FILE READS_DIR EVENTS_LOG" >&2; exit 2; }
threads=$1
jobs=$2
export READS=$3 EVENTS=$4

one() {
  local run=$1 layout=$2 kind=$3 index=$4 out=$5 kt=$6 fl=$7 sd=$8
  shift 8
  local d="$READS/$run"
  ev() { echo "$run $1 $(date +%s%3N)" >> "$EVENTS"; }
  # `times` must run in the subshell itself (not in a pipe or $(…), which fork again with zeroed times).
  cpu() {
    if [ -z "${CPU_LOG:-}" ]; then "$@"; return; fi
    ( rc=0; "$@" || rc=$?; times > "$d/.times"; echo "$run $1 $(tail -n 1 "$d/.times")" >> "$CPU_LOG"; exit $rc )
  }
  mkdir -p "$d"
  ev dl-start
  if [ "$kind" = sra ]; then
    cpu curl -fsS -o "$d/$run.sra" "$1"
    ev dl-end
    cpu fasterq-dump "$d/$run.sra" --split-3 -e "$kt" -O "$d" -t "$d/tmp" -f > /dev/null 2>&1
    rm -rf "$d/$run.sra" "$d/tmp"
    ev convert-end
  else
    for url in "$@"; do cpu curl -fsS -o "$d/${url##*/}" "$url"; done
    ev dl-end
  fi
  if [ "$layout" = paired ]; then
    cpu kallisto quant -i "$index" -o "$out/$run" -t "$kt" "$d/${run}"_1.fastq* "$d/${run}"_2.fastq* 2> /dev/null
  else
    cpu kallisto quant -i "$index" -o "$out/$run" -t "$kt" --single -l "$fl" -s "$sd" "$d/${run}".fastq* 2> /dev/null
  fi
  ev quant-end
  rm -rf "$d"
  ev done
}
export -f one
xargs -P "$threads" -L 1 bash -c 'set -euo pipefail; one "$@"' _ < "$jobs"
