#!/usr/bin/env bash
# Serves one file in turn with understudy, qemu-nbd and nbdkit (file plugin) over a unix socket and runs
# identical fio jobs (fio's nbd engine) against each, interleaved over several rounds so that drift of this
# shared machine hits every server alike. Prints per-row medians and understudy's ratio to the best peer.
#
#   bench/nbd-vs-peers.sh                    # defaults below
#   ROUNDS=5 RUNTIME=20 SIZE=4G DIR=/var/tmp bench/nbd-vs-peers.sh
#   IO=threads IO_WORKERS=2 bench/nbd-vs-peers.sh   # pin understudy's I/O backend (default: auto, 0 workers)
#
# Needs: fio, qemu-nbd (qemu-utils), nbdkit, python3, and a built jar (bin/understudy builds it if missing).
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
ROUNDS=${ROUNDS:-3}
RUNTIME=${RUNTIME:-10}
SIZE=${SIZE:-1G}
DIR=${DIR:-/tmp}
IO=${IO:-auto}
IO_WORKERS=${IO_WORKERS:-0}
SERVERS=${SERVERS:-"understudy qemu-nbd nbdkit"}

for tool in fio qemu-nbd nbdkit python3; do
    command -v "$tool" >/dev/null || { echo "nbd-vs-peers: $tool is missing (apt-get install fio qemu-utils nbdkit)" >&2; exit 1; }
done

work=$(mktemp -d "$DIR/understudy-bench.XXXXXX")
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
image="$work/disk.img"
socket="$work/nbd.sock"
results="$work/results.tsv"

. "$root/bench/lib/fio-jobs.sh"
fio_fill "$image"
"$root/bin/understudy" --version >/dev/null   # builds the jar now, not inside a timed run

start_server() {
    rm -f "$socket"
    case "$1" in
        understudy) "$root/bin/understudy" serve --disk "$image" --socket "$socket" --io "$IO" --io-workers "$IO_WORKERS" >"$work/server.log" 2>&1 & ;;
        qemu-nbd)   qemu-nbd -f raw -k "$socket" -t -e 16 --cache=writeback --aio=threads "$image" >"$work/server.log" 2>&1 & ;;
        nbdkit)     nbdkit -f -U "$socket" file "$image" >"$work/server.log" 2>&1 & ;;
    esac
    server_pid=$!
    for _ in $(seq 1 200); do
        [ -S "$socket" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; return 1; }
        sleep 0.05
    done
    echo "nbd-vs-peers: $1 did not create $socket" >&2
    return 1
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

: >"$results"
for round in $(seq 1 "$ROUNDS"); do
    for server in $SERVERS; do
        echo "round $round/$ROUNDS: $server" >&2
        start_server "$server"
        fio_warmup
        fio_run_jobs "$server"
        stop_server
    done
done

python3 - "$results" "$SERVERS" <<'PY'
import statistics, sys
from collections import defaultdict
rows = defaultdict(lambda: defaultdict(list))
order = []
for line in open(sys.argv[1]):
    job, server, value = line.rstrip("\n").split("\t")
    if job not in order:
        order.append(job)
    rows[job][server].append(float(value))
servers = sys.argv[2].split()
print(f"{'job':24}" + "".join(f"{s:>14}" for s in servers) + f"{'ratio':>9}  unit")
for job in order:
    med = {s: statistics.median(rows[job][s]) for s in servers if rows[job][s]}
    lower_better = job.endswith("p99")
    peers = [v for s, v in med.items() if s != "understudy"]
    ratio = ""
    if "understudy" in med and peers:
        best = min(peers) if lower_better else max(peers)
        ratio = f"{(best / med['understudy'] if lower_better else med['understudy'] / best):.2f}x"
    unit = "p99 us (lower better)" if lower_better else ("MiB/s" if job.startswith("1m") else "IOPS")
    print(f"{job:24}" + "".join(f"{med.get(s, float('nan')):>14.1f}" for s in servers) + f"{ratio:>9}  {unit}")
print(f"medians of {len(next(iter(rows.values()))['understudy'] or [0])} rounds; ratio = understudy / best peer "
      "(for latency: best peer / understudy), so > 1 means understudy is better")
PY
