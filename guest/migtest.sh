#!/bin/bash
# Repeated live migration of the guest under QEMU TCG, counting destination guests that
# die afterwards (see README.md, "Live migration"). Root: uses a network namespace with a
# bridge and two taps. Each round: boot the source, start the destination with
# -incoming, dirty RATE MiB/s over MEM MiB, migrate, kill the source, then poll the
# destination for 10 s.
#
#   guest/migtest.sh [ROUNDS] [RATE_MIB_S] [WORKING_SET_MIB] [GUEST_MIB]   (default 6 64 64 256)
#   MIGTEST_PTI=auto                   reproduce without the pti=on workaround (default on)
#   MIGTEST_APPEND="vigil.thp=always"  extra kernel arguments
#   MIGTEST_ACCEL=tcg,thread=single    accelerator options
set -uo pipefail
ROUNDS=${1:-6}
RATE=${2:-64}
WSET=${3:-64}
GMEM=${4:-256}
GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${VIGIL_GUEST_OUT:-$GUEST_DIR/out}
TOOL="python3 $GUEST_DIR/guesttool.py"
NS=vgmig$$
WORK=$(mktemp -d /tmp/vigil-migtest.XXXXXX)
PIDS=()
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    ip netns del "$NS" 2>/dev/null
    [ "${MIGTEST_KEEP:-0}" = 1 ] && echo "logs in $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
[ "$(id -u)" = 0 ] || { echo "migtest: needs root (network namespace, taps)" >&2; exit 2; }
"$GUEST_DIR/build.sh" >/dev/null || { echo "migtest: build failed" >&2; exit 1; }
KERNEL=$OUT/vmlinux; [ -f "$KERNEL" ] || KERNEL=$OUT/vmlinuz
FW=(); [ -f /usr/share/qemu/qboot.rom ] && FW=(-bios /usr/share/qemu/qboot.rom)

ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add br0 type bridge
ip -n "$NS" addr add 10.77.3.1/24 dev br0
ip -n "$NS" link set br0 up
for t in tap0 tap1; do
    ip -n "$NS" tuntap add dev $t mode tap
    ip -n "$NS" link set $t master br0
    ip -n "$NS" link set $t up
done
truncate -s 64M "$WORK/disk.raw"
URL=http://10.77.3.100/

qemu() { # tag tap extra...
    local tag=$1 tap=$2; shift 2
    ip netns exec "$NS" nice -n 10 qemu-system-x86_64 \
        -machine pc -accel "${MIGTEST_ACCEL:-tcg}" -cpu qemu64 -smp 1 -m "$GMEM" \
        -nodefaults -no-user-config -display none -no-reboot "${FW[@]}" \
        -kernel "$KERNEL" -initrd "$OUT/initramfs.cpio.gz" \
        -append "console=ttyS0 quiet cryptomgr.notests pti=${MIGTEST_PTI:-on} panic=-1 vigil.ip=10.77.3.100/24 vigil.name=mig vigil.dirty=$RATE vigil.dirtymem=$WSET ${MIGTEST_APPEND:-}" \
        -drive "file=$WORK/disk.raw,format=raw,if=none,id=disk0,cache=none,aio=threads" -device virtio-blk-pci,drive=disk0 \
        -netdev "tap,id=net0,ifname=$tap,script=no,downscript=no" -device virtio-net-pci,netdev=net0,mac=52:54:00:00:00:09,romfile= \
        -serial "file:$WORK/$tag.log" -qmp "unix:$WORK/$tag.qmp,server=on,wait=off" "$@" >"$WORK/$tag.err" 2>&1 &
    PIDS+=($!)
    echo $!
}

ok=0 died=0 failed=0
echo "migtest: $ROUNDS rounds, dirtying $RATE MiB/s over $WSET MiB, guest $GMEM MiB, ${MIGTEST_ACCEL:-tcg} pti=${MIGTEST_PTI:-on} ${MIGTEST_APPEND:-}"
for r in $(seq 1 "$ROUNDS"); do
    src=$(qemu src$r tap0)
    ip netns exec "$NS" $TOOL wait-http "$URL" 90 >/dev/null || { echo "round $r: source did not boot"; failed=$((failed + 1)); kill -9 "$src"; continue; }
    port=$((20000 + RANDOM % 20000))
    dst=$(qemu dst$r tap1 -incoming "tcp:127.0.0.1:$port")
    sleep 2
    boot=$(ip netns exec "$NS" $TOOL get "$URL" | json 'd["boot_id"]')
    $TOOL qmp "$WORK/src$r.qmp" migrate "{\"uri\": \"tcp:127.0.0.1:$port\"}" >/dev/null
    st=
    for i in $(seq 1 600); do
        m=$($TOOL qmp "$WORK/src$r.qmp" query-migrate)
        st=$(echo "$m" | json 'd.get("status")')
        [ "$st" = completed ] || [ "$st" = failed ] || [ "$st" = cancelled ] && break
        sleep 0.1
    done
    kill -9 "$src" 2>/dev/null; wait "$src" 2>/dev/null
    p=$(ip netns exec "$NS" $TOOL poll "$URL" 10 100)
    alive=$(kill -0 "$dst" 2>/dev/null && echo yes || echo no)
    panic=$(grep -c 'Kernel panic\|BUG:' "$WORK/dst$r.log")
    same=$(echo "$p" | json '"yes" if (d["last"] or {}).get("boot_id") == "'"$boot"'" else "no"')
    line="round $r: $st $(echo "$m" | json '"total %s ms downtime %s ms passes %s" % (d.get("total-time"), d.get("downtime"), d.get("ram", {}).get("dirty-sync-count"))'); after: $(echo "$p" | json '"%d requests %d failures" % (d["requests"], d["failures"])'), same boot_id: $same, destination alive: $alive, panic lines: $panic, dirty_mismatches: $(echo "$p" | json '(d["last"] or {}).get("dirty_mismatches")')"
    echo "$line"
    if [ "$st" != completed ]; then failed=$((failed + 1))
    elif [ "$same" = yes ] && [ "$alive" = yes ] && [ "$panic" = 0 ] && [ "$(echo "$p" | json 'd["failures"]')" = 0 ] \
         && [ "$(echo "$p" | json '(d["last"] or {}).get("dirty_mismatches")')" = 0 ]; then ok=$((ok + 1))
    else died=$((died + 1)); [ "${MIGTEST_KEEP:-0}" = 1 ] && grep -m3 'RIP\|BUG' "$WORK/dst$r.log"; fi
    kill -9 "$dst" 2>/dev/null; wait "$dst" 2>/dev/null
done
echo "migtest: $ok survived, $died destination guests died or stopped answering, $failed migrations failed"
[ "$died" = 0 ] && [ "$failed" = 0 ]
