#!/usr/bin/env bash
# What replication costs the guest: the same fio jobs as nbd-vs-peers.sh (fio's nbd engine on the VM-facing
# unix socket) against an unreplicated `understudy serve`, and against a primary whose secondary runs beside it
# over NBD (TCP loopback) and over Aeron UDP (loopback). Modes are interleaved over several rounds so that drift
# of this shared machine hits every mode alike; a checkpoint is taken every CHECKPOINT_MS through the primary's
# control socket, as COLO would. Prints per-row medians, each replicated mode's ratio to serve, and aeron/nbd;
# then each row's spread over the rounds and aeron/nbd round by round.
#
#   bench/replication-overhead.sh
#   ROUNDS=5 RUNTIME=20 SIZE=4G DIR=/var/tmp CHECKPOINT_MS=500 bench/replication-overhead.sh
#   MODES="serve aeron-udp" bench/replication-overhead.sh
#   PIN=1 bench/replication-overhead.sh
#   CLUSTER=4K bench/replication-overhead.sh
#   HIDDEN_CLUSTER=64K bench/replication-overhead.sh
#   COW_COPY=kernel DIR=/mnt/xfs bench/replication-overhead.sh
#
# Both sidecars share this machine's cores and disk with fio, so the replicated rows pay for the secondary's
# work too; on two hosts the secondary's cost moves off the primary. PIN=1 comes closer to two hosts: fio and
# the primary (or serve) run on CPU 0 only, the secondary on CPU 1 only (the disk stays shared).
# CLUSTER is both sides' --cluster-size, HIDDEN_CLUSTER the secondary's --hidden-cluster-size (default 4K): the
# secondary copies a whole H cluster into its hidden overlay before the first write of an epoch to it, so small
# random writes copy up to HIDDEN_CLUSTER/4K times their own bytes. COW_COPY is the secondary's --cow-copy: memory
# (the default) or kernel (copy_file_range from S into H, which share DIR's file system; on XFS or btrfs a reflink).
# Needs: fio, python3, and a built jar (bin/understudy builds it if missing).
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
ROUNDS=${ROUNDS:-3}
RUNTIME=${RUNTIME:-10}
SIZE=${SIZE:-1G}
DIR=${DIR:-/tmp}
MODES=${MODES:-"serve nbd aeron-udp"}
CHECKPOINT_MS=${CHECKPOINT_MS:-1000}
PIN=${PIN:-0}
CLUSTER=${CLUSTER:-64K}
HIDDEN_CLUSTER=${HIDDEN_CLUSTER:-4K}
COW_COPY=${COW_COPY:-memory}

for tool in fio python3; do
    command -v "$tool" >/dev/null || { echo "replication-overhead: $tool is missing" >&2; exit 1; }
done

work=$(mktemp -d "$DIR/understudy-repl-bench.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
secondary_cpu=()
if [ "$PIN" = 1 ]; then
    command -v taskset >/dev/null || { echo "replication-overhead: PIN=1 needs taskset" >&2; exit 1; }
    [ "$(nproc)" -ge 2 ] || { echo "replication-overhead: PIN=1 needs two CPUs" >&2; exit 1; }
    taskset -pc 0 $$ >/dev/null     # fio and the primary inherit CPU 0
    secondary_cpu=(taskset -c 1)
fi
primary_disk="$work/p.img"
secondary_disk="$work/s.img"
socket="$work/pvm.sock"
results="$work/results.tsv"

. "$root/bench/lib/fio-jobs.sh"
fio_fill "$primary_disk"
"$root/bin/understudy" --version >/dev/null   # builds the jar now, not inside a timed run

await_line() { # log pattern
    for _ in $(seq 1 600); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "replication-overhead: no '$2' in $1:" >&2; cat "$1" >&2; return 1
}

start_mode() {
    rm -f "$work"/*.sock "$work"/*.ctl "$work"/h.img* "$work"/a.img
    case "$1" in
        serve)
            "$root/bin/understudy" serve --disk "$primary_disk" --socket "$socket" >"$work/primary.log" 2>&1 &
            pids+=($!)
            await_line "$work/primary.log" "serving"
            return ;;
        nbd)       listen="nbd://127.0.0.1:0/colo" ;;
        aeron-udp) listen="aeron:udp?endpoint=127.0.0.1:0" ;;
    esac
    cp --sparse=always "$primary_disk" "$secondary_disk"
    "${secondary_cpu[@]}" "$root/bin/understudy" secondary --disk "$secondary_disk" --hidden "$work/h.img" --active "$work/a.img" \
        --cluster-size "$CLUSTER" --hidden-cluster-size "$HIDDEN_CLUSTER" --cow-copy "$COW_COPY" \
        --socket "$work/svm.sock" --control "$work/s.ctl" --listen "$listen" >"$work/secondary.log" 2>&1 &
    pids+=($!)
    await_line "$work/secondary.log" "secondary ready"
    local peer
    peer=$(grep -o 'forwarding sink [^ ,]*' "$work/secondary.log" | head -1 | cut -d' ' -f3)
    local extra=()
    if [ "$1" = nbd ]; then
        extra=(--peer-control "127.0.0.1:$(grep -o 'control link 127.0.0.1:[0-9]*' "$work/secondary.log" | head -1 | cut -d: -f2)")
    fi
    "$root/bin/understudy" primary --disk "$primary_disk" --socket "$socket" --control "$work/p.ctl" \
        --cluster-size "$CLUSTER" --peer "$peer" "${extra[@]}" >"$work/primary.log" 2>&1 &
    pids+=($!)
    await_line "$work/primary.log" "primary ready"
}

stop_mode() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}

# Checkpoints through the control socket's JSON protocol: a python loop, not a JVM per checkpoint.
checkpointer() {
    [ "$CHECKPOINT_MS" -gt 0 ] && [ -S "$work/p.ctl" ] || return 0
    python3 - "$work/p.ctl" "$CHECKPOINT_MS" <<'PY' &
import socket, sys, time
path, period = sys.argv[1], int(sys.argv[2]) / 1000
while True:
    time.sleep(period)
    try:
        s = socket.socket(socket.AF_UNIX); s.connect(path)
        s.sendall(b'{"execute": "checkpoint"}\n'); s.recv(65536); s.close()
    except OSError:
        sys.exit(0)
PY
    pids+=($!)
}

: >"$results"
for round in $(seq 1 "$ROUNDS"); do
    for mode in $MODES; do
        echo "round $round/$ROUNDS: $mode" >&2
        start_mode "$mode"
        checkpointer
        fio_warmup
        fio_run_jobs "$mode"
        stop_mode
    done
done

python3 - "$results" "$MODES" <<'PY'
import statistics, sys
from collections import defaultdict
rows = defaultdict(lambda: defaultdict(list))
order = []
for line in open(sys.argv[1]):
    job, mode, value = line.rstrip("\n").split("\t")
    if job not in order:
        order.append(job)
    rows[job][mode].append(float(value))
modes = sys.argv[2].split()
replicated = [m for m in modes if m != "serve"]
head = f"{'job':24}" + "".join(f"{m:>12}" for m in modes)
head += "".join(f"{m + '/serve':>18}" for m in replicated if "serve" in modes)
if "nbd" in modes and "aeron-udp" in modes:
    head += f"{'aeron/nbd':>11}"
print(head + "  unit")
for job in order:
    med = {m: statistics.median(rows[job][m]) for m in modes if rows[job][m]}
    lower_better = job.endswith("p99")
    def ratio(a, b):
        if a not in med or b not in med:
            return "n/a"
        return f"{(med[b] / med[a] if lower_better else med[a] / med[b]):.2f}x"
    line = f"{job:24}" + "".join(f"{med.get(m, float('nan')):>12.1f}" for m in modes)
    line += "".join(f"{ratio(m, 'serve'):>18}" for m in replicated if "serve" in modes)
    if "nbd" in modes and "aeron-udp" in modes:
        line += f"{ratio('aeron-udp', 'nbd'):>11}"
    unit = "p99 us (lower better)" if lower_better else ("MiB/s" if job.startswith("1m") else "IOPS")
    print(line + "  " + unit)
print("medians of the rounds; a ratio > 1 means the first mode is better (for p99: lower latency)")
# This machine drifts between rounds (other tenants, steal time): the spread shows which rows the medians can
# decide, and the ratio of the two transports within each round, run back to back, is paired against drift.
print()
head = f"{'spread (min-max)':24}" + "".join(f"{m:>20}" for m in modes)
if "nbd" in modes and "aeron-udp" in modes:
    head += "  aeron/nbd per round"
print(head)
for job in order:
    lower_better = job.endswith("p99")
    line = f"{job:24}" + "".join(
        f"{(f'{min(rows[job][m]):.0f}-{max(rows[job][m]):.0f}' if rows[job][m] else 'n/a'):>20}" for m in modes)
    if "nbd" in modes and "aeron-udp" in modes:
        pairs = zip(rows[job]["aeron-udp"], rows[job]["nbd"])
        line += "  " + " ".join(f"{(n / a if lower_better else a / n):.2f}" for a, n in pairs)
    print(line)
PY
echo "cluster size $CLUSTER, H cluster size $HIDDEN_CLUSTER, COW copies through $COW_COPY," \
    "checkpoint every $CHECKPOINT_MS ms," \
    "$ROUNDS rounds of $RUNTIME s, PIN=$PIN"
