# The fio side of the end-to-end benchmarks, sourced by nbd-vs-peers.sh and replication-overhead.sh so that both
# compare the same jobs measured the same way. Callers set: work (scratch dir), socket (the NBD unix socket under
# test), SIZE, RUNTIME, results (a TSV file: job, label, value).

# name | fio arguments | metric reported (iops or mibs); the QD1 row also yields a p99 latency row
FIO_JOBS=(
  "4k-randread-qd32|--rw=randread --bs=4k --iodepth=32|iops"
  "4k-randwrite-qd32|--rw=randwrite --bs=4k --iodepth=32|iops"
  "1m-seqread-qd8|--rw=read --bs=1M --iodepth=8|mibs"
  "1m-seqwrite-qd8|--rw=write --bs=1M --iodepth=8|mibs"
  "4k-randwrite-qd1|--rw=randwrite --bs=4k --iodepth=1|iops"
)

# Fully allocates an image, so that no server pays for first-write allocation and reads hit real data.
fio_fill() { # image
    fio --name=fill --filename="$1" --size="$SIZE" --rw=write --bs=1M --ioengine=psync --end_fsync=1 \
        --output=/dev/null
}

# An unmeasured warm-up, the same for every contender: a JIT-compiled daemon is what runs in production.
fio_warmup() {
    fio --name=warmup --ioengine=nbd --uri="nbd+unix:///?socket=$socket" --size="$SIZE" --time_based \
        --runtime=3 --rw=randrw --bs=4k --iodepth=16 --output=/dev/null
}

# Runs every job of FIO_JOBS against $socket and appends one row per job (and the QD1 p99) for $1.
fio_run_jobs() { # label
    local job name args metric out="$work/fio.json"
    for job in "${FIO_JOBS[@]}"; do
        IFS='|' read -r name args metric <<<"$job"
        # shellcheck disable=SC2086
        fio --name="$name" --ioengine=nbd --uri="nbd+unix:///?socket=$socket" --size="$SIZE" --time_based \
            --runtime="$RUNTIME" --ramp_time=1 --numjobs=1 --group_reporting --output-format=json \
            --output="$out" $args
        python3 - "$out" "$metric" "$1" "$name" >>"$results" <<'PY'
import json, sys
path, metric, label, job = sys.argv[1:5]
j = json.load(open(path))["jobs"][0]
side = j["read"] if j["read"]["io_bytes"] > 0 else j["write"]
value = side["iops"] if metric == "iops" else side["bw_bytes"] / 1048576
print(f"{job}\t{label}\t{value:.1f}")
if job == "4k-randwrite-qd1":
    print(f"4k-randwrite-qd1-p99\t{label}\t{j['write']['clat_ns']['percentile']['99.000000'] / 1000:.1f}")
PY
    done
}
