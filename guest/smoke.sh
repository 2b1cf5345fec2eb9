#!/bin/bash
# Smoke test of the Vigil guest image under QEMU TCG.
#
#   guest/smoke.sh            build the image (guest/build.sh) and run every check
#   SMOKE_SKIP_TAP=1 ...      skip the tap/bridge/network-namespace part
#   SMOKE_KEEP=1 ...          keep the work directory (serial logs, disk)
#   SMOKE_MIG_DIRTY=N ...     dirtying rate during the migration check (default 32 MiB/s)
#
# Checks, in order (each prints PASS/FAIL/SKIP):
#   user-mode networking (hostfwd):
#     1. boot → HTTP GET / answers JSON with boot_id, counter, uptime_ms, name (boot time printed)
#     2. a client polling every 50 ms for 3 s: no failure, no gap > 1 s, counter increases
#     3. GET /dirty?rate=32&mem=16 changes the dirtier (dirty_mib_s, dirtied_mib grows), rate=0 stops it
#     4. kill -9 QEMU, boot again: new boot_id, start_counter >= last flushed value seen before the
#        kill, and the counter keeps increasing (no flushed write lost)
#     5. QMP system_powerdown: QEMU exits within 10 s, the guest logged a clean power off, and the
#        counter slot on the raw disk (read on the host) holds >= the last flushed value seen
#   tap on a bridge in a network namespace (root only), client in another namespace:
#     6. boot → HTTP from the other namespace (boot time printed), polling as in 2
#     7. live migration (QMP migrate over TCP on loopback) to a second QEMU started with -incoming,
#        on a second tap on the same bridge, while the guest dirties 32 MiB/s: completes, same
#        boot_id afterwards, counter keeps increasing on the destination for 5 s, no guest panic,
#        dirty_mismatches 0 (no lost memory write)
#     8. QMP system_powerdown of the destination as in 5
# Needs: qemu-system-x86_64, python3, and for 6–7 root with ip netns/bridge/tuntap.
set -uo pipefail

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${VIGIL_GUEST_OUT:-$GUEST_DIR/out}
TOOL="python3 $GUEST_DIR/guesttool.py"
WORK=$(mktemp -d /tmp/vigil-guest-smoke.XXXXXX)
NS_HOST=vgsmoke-h$$
NS_CLIENT=vgsmoke-c$$
QEMU_PID=
FAILS=0
PASSES=0

say() { echo "smoke: $*"; }
pass() { PASSES=$((PASSES + 1)); echo "PASS: $*"; }
fail() { FAILS=$((FAILS + 1)); echo "FAIL: $*"; }
skip() { echo "SKIP: $*"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

cleanup() {
    if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then kill -9 "$QEMU_PID" 2>/dev/null; wait "$QEMU_PID" 2>/dev/null; fi
    ip netns del "$NS_HOST" 2>/dev/null
    ip netns del "$NS_CLIENT" 2>/dev/null
    if [ "${SMOKE_KEEP:-0}" = 1 ]; then say "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for t in qemu-system-x86_64 python3; do
    command -v "$t" >/dev/null || { echo "smoke: $t is required" >&2; exit 2; }
done

"$GUEST_DIR/build.sh" || { echo "smoke: guest/build.sh failed" >&2; exit 1; }
KERNEL=$OUT/vmlinux
[ -f "$KERNEL" ] || KERNEL=$OUT/vmlinuz
FIRMWARE=()
[ -f /usr/share/qemu/qboot.rom ] && FIRMWARE=(-bios /usr/share/qemu/qboot.rom)
say "kernel $KERNEL, firmware ${FIRMWARE[*]:-SeaBIOS (default)}"

DISK=$WORK/disk.raw
truncate -s 64M "$DISK"

# start_qemu TAG NETNS APPEND NETDEV-ARGS... : starts QEMU in the background, sets QEMU_PID, T0
start_qemu() {
    local tag=$1 ns=$2 append=$3
    shift 3
    local pre=()
    [ -n "$ns" ] && pre=(ip netns exec "$ns")
    rm -f "$WORK/$tag.qmp"
    T0=$(date +%s.%N)
    "${pre[@]}" nice -n 10 qemu-system-x86_64 \
        -machine pc -accel tcg -cpu qemu64 -smp 1 -m 256 \
        -nodefaults -no-user-config -display none -no-reboot "${FIRMWARE[@]}" \
        -kernel "$KERNEL" -initrd "$OUT/initramfs.cpio.gz" \
        -append "console=ttyS0 quiet cryptomgr.notests pti=on panic=-1 $append" \
        -drive "file=$DISK,format=raw,if=none,id=disk0,cache=none,aio=threads" \
        -device virtio-blk-pci,drive=disk0 \
        "$@" \
        -serial "file:$WORK/$tag.log" \
        -qmp "unix:$WORK/$tag.qmp,server=on,wait=off" &
    QEMU_PID=$!
}

stop_qemu_hard() {
    kill -9 "$QEMU_PID" 2>/dev/null
    wait "$QEMU_PID" 2>/dev/null
    QEMU_PID=
}

# poll_check NAME URL [NS]
poll_check() {
    local name=$1 url=$2 ns=${3:-} pre=()
    [ -n "$ns" ] && pre=(ip netns exec "$ns")
    local r
    r=$("${pre[@]}" $TOOL poll "$url" 3 50)
    local verdict
    verdict=$(echo "$r" | json '"ok" if d["failures"] == 0 and d["max_gap_ms"] < 1000 and d["last"]["counter"] > d["first"]["counter"] else "bad"')
    local summary
    summary=$(echo "$r" | json '"%d requests, %d failures, max latency %.0f ms, max gap %.0f ms, counter %d -> %d" % (d["requests"], d["failures"], d["max_latency_ms"], d["max_gap_ms"], (d["first"] or {}).get("counter", -1), (d["last"] or {}).get("counter", -1))')
    if [ "$verdict" = ok ]; then pass "$name: polling every 50 ms: $summary"; else fail "$name: polling every 50 ms: $summary"; fi
}

# powerdown_check NAME URL [NS]: system_powerdown, QEMU must exit cleanly within 10 s
powerdown_check() {
    local name=$1 url=$2 ns=${3:-} pre=()
    [ -n "$ns" ] && pre=(ip netns exec "$ns")
    local before
    before=$("${pre[@]}" $TOOL get "$url" | json 'd["flushed"]')
    local t1
    t1=$(date +%s.%N)
    $TOOL qmp "$WORK/$name.qmp" system_powerdown >/dev/null || { fail "$name: QMP system_powerdown failed"; return; }
    local i=0
    while kill -0 "$QEMU_PID" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    if kill -0 "$QEMU_PID" 2>/dev/null; then
        fail "$name: QEMU still running 10 s after system_powerdown"
        stop_qemu_hard
        return
    fi
    wait "$QEMU_PID" 2>/dev/null
    QEMU_PID=
    local took
    took=$(python3 -c "import time; print('%.2f' % (time.time() - $t1))")
    local ondisk
    ondisk=$(python3 - "$DISK" <<'EOF'
import struct, sys, zlib
best = 0
with open(sys.argv[1], "rb") as f:
    data = f.read(8192)
for i in range(2):
    s = data[i * 4096:i * 4096 + 4096]
    body = s[:96]   # magic(8) counter(8) uptime(8) boot_id(40) name(32)
    crc, = struct.unpack_from("<I", s, 96)
    if s[:8] == b"VIGILCT1" and zlib.crc32(body) == crc:
        best = max(best, struct.unpack_from("<Q", s, 8)[0])
print(best)
EOF
)
    if grep -q "powering off" "$WORK/$name.log" && [ "$ondisk" -ge "$before" ]; then
        pass "$name: ACPI powerdown: QEMU exited ${took}s after system_powerdown; disk holds counter $ondisk >= last flushed seen $before"
    else
        fail "$name: ACPI powerdown: exited after ${took}s, clean log: $(grep -c 'powering off' "$WORK/$name.log"), disk $ondisk vs flushed $before"
    fi
}

# ---------------------------------------------------------------- user-mode networking
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT/
USERNET=(-netdev "user,id=net0,hostfwd=tcp:127.0.0.1:$PORT-:80"
         -device "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01,romfile=")
APPEND_USER="vigil.ip=10.0.2.15/24 vigil.gw=10.0.2.2 vigil.name=smoke1"

say "1: booting (user-mode networking, http on $URL)"
start_qemu boot1 "" "$APPEND_USER" "${USERNET[@]}"
r=$($TOOL wait-http "$URL" 90 "$T0")
if echo "$r" | json '"ok" if all(k in d["answer"] for k in ("boot_id","counter","uptime_ms","flushed")) and d["answer"]["name"] == "smoke1" and d["answer"]["disk_ok"] else "bad"' 2>/dev/null | grep -q ok; then
    pass "1: HTTP answered $(echo "$r" | json 'd["after_s"]') s after QEMU start (guest ready at $(echo "$r" | json 'd["answer"]["http_ready_ms"]') ms guest uptime): $(echo "$r" | json 'json.dumps(d["answer"])')"
else
    fail "1: no valid HTTP answer: $r"
    tail -20 "$WORK/boot1.log"
    exit 1
fi
BOOT1=$(echo "$r" | json 'd["answer"]["boot_id"]')

poll_check 2 "$URL"

a=$($TOOL get "${URL}dirty?rate=32&mem=16")
sleep 2
b=$($TOOL get "$URL")
c=$($TOOL get "${URL}dirty?rate=0")
if [ "$(echo "$a" | json 'd["dirty_mib_s"]')" = 32 ] && [ "$(echo "$a" | json 'd["dirty_mem_mib"]')" = 16 ] \
   && [ "$(echo "$b" | json 'd["dirtied_mib"]')" -ge 32 ] && [ "$(echo "$c" | json 'd["dirty_mib_s"]')" = 0 ]; then
    pass "3: /dirty: rate 32 MiB/s over 16 MiB dirtied $(echo "$b" | json 'd["dirtied_mib"]') MiB in ~2 s, rate=0 accepted"
else
    fail "3: /dirty: $a / $b / $c"
fi

# persistence across kill -9
last=$($TOOL get "$URL")
FLUSHED=$(echo "$last" | json 'd["flushed"]')
stop_qemu_hard
say "4: killed QEMU (kill -9) with last flushed counter seen $FLUSHED; booting again"
start_qemu boot2 "" "$APPEND_USER" "${USERNET[@]}"
r=$($TOOL wait-http "$URL" 90 "$T0")
sleep 1
n=$($TOOL get "$URL" 2>/dev/null || echo '{}')
if [ "$(echo "$r" | json 'd["answer"]["boot_id"]' 2>/dev/null)" != "$BOOT1" ] \
   && [ "$(echo "$r" | json 'd["answer"]["start_counter"]' 2>/dev/null || echo -1)" -ge "$FLUSHED" ] \
   && [ "$(echo "$n" | json 'd["counter"]' 2>/dev/null || echo -1)" -gt "$FLUSHED" ]; then
    pass "4: after kill -9: new boot_id, start_counter $(echo "$r" | json 'd["answer"]["start_counter"]') >= last flushed $FLUSHED, counter now $(echo "$n" | json 'd["counter"]') (HTTP after $(echo "$r" | json 'd["after_s"]') s)"
else
    fail "4: after kill -9: flushed before $FLUSHED, answer $r, later $n"
fi

powerdown_check boot2 "$URL"

# ---------------------------------------------------------------- tap on a bridge in a netns
if [ "${SMOKE_SKIP_TAP:-0}" = 1 ]; then
    skip "6-7: tap networking (SMOKE_SKIP_TAP=1)"
elif [ "$(id -u)" != 0 ]; then
    skip "6-7: tap networking needs root"
elif ! ip netns add "$NS_HOST" 2>/dev/null; then
    skip "6-7: cannot create network namespaces"
else
    ip netns add "$NS_CLIENT"
    ip -n "$NS_HOST" link set lo up
    ip -n "$NS_CLIENT" link set lo up
    ip -n "$NS_HOST" link add br0 type bridge
    ip -n "$NS_HOST" link set br0 up
    ip -n "$NS_HOST" tuntap add dev tap0 mode tap
    ip -n "$NS_HOST" link set tap0 master br0
    ip -n "$NS_HOST" link set tap0 up
    ip -n "$NS_HOST" link add veth0 type veth peer name veth1 netns "$NS_CLIENT"
    ip -n "$NS_HOST" link set veth0 master br0
    ip -n "$NS_HOST" link set veth0 up
    ip -n "$NS_CLIENT" addr add 10.77.3.2/24 dev veth1
    ip -n "$NS_CLIENT" link set veth1 up
    TAPURL=http://10.77.3.100/
    say "6: booting with a tap on a bridge in netns $NS_HOST; client in netns $NS_CLIENT"
    start_qemu tap1 "$NS_HOST" "vigil.ip=10.77.3.100/24 vigil.name=smoke2" \
        -netdev tap,id=net0,ifname=tap0,script=no,downscript=no \
        -device virtio-net-pci,netdev=net0,mac=52:54:00:00:00:02,romfile=
    r=$(ip netns exec "$NS_CLIENT" $TOOL wait-http "$TAPURL" 90 "$T0")
    if echo "$r" | json '"ok" if d["answer"]["name"] == "smoke2" and d["answer"]["counter"] > 0 else "bad"' 2>/dev/null | grep -q ok; then
        pass "6: HTTP from another namespace $(echo "$r" | json 'd["after_s"]') s after QEMU start (guest ready at $(echo "$r" | json 'd["answer"]["http_ready_ms"]') ms uptime)"
        poll_check 6 "$TAPURL" "$NS_CLIENT"
        # 7: live migration to a second QEMU on tap1
        ip -n "$NS_HOST" tuntap add dev tap1 mode tap
        ip -n "$NS_HOST" link set tap1 master br0
        ip -n "$NS_HOST" link set tap1 up
        ip netns exec "$NS_CLIENT" $TOOL get "${TAPURL}dirty?rate=${SMOKE_MIG_DIRTY:-32}&mem=32" >/dev/null
        SRC_PID=$QEMU_PID
        MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        start_qemu tap2 "$NS_HOST" "vigil.ip=10.77.3.100/24 vigil.name=smoke2" \
            -netdev tap,id=net0,ifname=tap1,script=no,downscript=no \
            -device virtio-net-pci,netdev=net0,mac=52:54:00:00:00:02,romfile= \
            -incoming "tcp:127.0.0.1:$MPORT"
        DST_PID=$QEMU_PID
        i=0; while [ ! -S "$WORK/tap2.qmp" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        sleep 0.5
        before=$(ip netns exec "$NS_CLIENT" $TOOL get "$TAPURL")
        $TOOL qmp "$WORK/tap1.qmp" migrate "{\"uri\": \"tcp:127.0.0.1:$MPORT\"}" >/dev/null
        st=
        for i in $(seq 1 300); do
            m=$($TOOL qmp "$WORK/tap1.qmp" query-migrate)
            st=$(echo "$m" | json 'd.get("status")')
            [ "$st" = completed ] || [ "$st" = failed ] || [ "$st" = cancelled ] && break
            sleep 0.1
        done
        kill -9 "$SRC_PID" 2>/dev/null; wait "$SRC_PID" 2>/dev/null
        QEMU_PID=$DST_PID
        after=$(ip netns exec "$NS_CLIENT" $TOOL wait-http "$TAPURL" 10 | json 'json.dumps(d.get("answer", {}))')
        sleep 5
        later=$(ip netns exec "$NS_CLIENT" $TOOL get "$TAPURL" 2>/dev/null || echo '{}')
        if [ "$st" = completed ] && kill -0 "$DST_PID" 2>/dev/null \
           && [ "$(echo "$later" | json 'd.get("boot_id")')" = "$(echo "$before" | json 'd["boot_id"]')" ] \
           && [ "$(echo "$later" | json 'd.get("counter", -1)')" -gt "$(echo "$after" | json 'd.get("counter", 0)')" ] \
           && [ "$(echo "$later" | json 'd.get("dirty_mismatches", -1)')" = 0 ] \
           && ! grep -q 'Kernel panic' "$WORK/tap2.log"; then
            pass "7: live migration with ${SMOKE_MIG_DIRTY:-32} MiB/s dirtying: $(echo "$m" | json '"total %s ms, downtime %s ms, %s passes" % (d.get("total-time"), d.get("downtime"), d["ram"]["dirty-sync-count"])'); same boot_id, counter $(echo "$before" | json 'd["counter"]') -> $(echo "$later" | json 'd["counter"]') on the destination, 0 lost memory writes"
        else
            fail "7: live migration (${SMOKE_MIG_DIRTY:-32} MiB/s dirtying): status $st, before $before, after $after, 5 s later $later, dst panic: $(grep -c 'Kernel panic' "$WORK/tap2.log") (TCG lost-dirty-page problem? see README)"
            grep -m3 'RIP\|BUG' "$WORK/tap2.log"
        fi
        if kill -0 "$DST_PID" 2>/dev/null; then
            ip netns exec "$NS_CLIENT" $TOOL get "${TAPURL}dirty?rate=0" >/dev/null 2>&1
            powerdown_check tap2 "$TAPURL" "$NS_CLIENT"
        fi
    else
        fail "6: no HTTP answer over the tap: $r"
        tail -20 "$WORK/tap1.log"
        stop_qemu_hard
    fi
fi

echo "smoke: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
