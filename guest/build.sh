#!/bin/bash
# Build the Vigil guest image from Debian packages only:
#   guest/out/vmlinuz            kernel from linux-image-6.1.0-*-amd64 (apt-get download + dpkg -x)
#   guest/out/vmlinux            the same kernel uncompressed (ELF with a PVH entry note): QEMU
#                                boots it directly with -kernel, skipping the in-guest xz
#                                decompression that costs seconds under TCG (see README.md)
#   guest/out/initramfs.cpio.gz  busybox-static + virtio modules + /init + static workload
# Idempotent and cached: nothing is rebuilt when the inputs are unchanged.
# Reproducible: fixed mtimes (SOURCE_DATE_EPOCH), sorted cpio list, owner 0:0, gzip -n.
#
# Environment:
#   VIGIL_GUEST_KERNEL   kernel package to use (default: newest linux-image-6.1.0-N-amd64 in apt-cache)
#   VIGIL_GUEST_CACHE    download/extract cache (default /var/cache/vigil-guest if writable, else guest/out/cache)
#   VIGIL_GUEST_OUT      output directory (default guest/out)
#   SOURCE_DATE_EPOCH    mtime for every file in the initramfs (default 946684800)
#   VIGIL_GUEST_FORCE=1  rebuild even if up to date
set -euo pipefail

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${VIGIL_GUEST_OUT:-$GUEST_DIR/out}
EPOCH=${SOURCE_DATE_EPOCH:-946684800}
export LC_ALL=C TZ=UTC

say() { echo "guest/build.sh: $*"; }
die() { echo "guest/build.sh: error: $*" >&2; exit 1; }

# Modules the guest needs, in load order (dependencies are added before them).
MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk failover net_failover virtio_net evdev button"

# ---- tools ------------------------------------------------------------------
missing=
for t in gcc cpio depmod dpkg dpkg-deb apt-cache apt-get gzip sha256sum find sort; do
    command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
done
[ -z "$missing" ] || die "missing tools:$missing (apt-get install -y --no-install-recommends gcc cpio kmod)"
BUSYBOX=/bin/busybox
dpkg -s busybox-static >/dev/null 2>&1 && [ -x "$BUSYBOX" ] \
    || die "busybox-static is not installed (apt-get install -y --no-install-recommends busybox-static)"
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || die "static libc missing (apt-get install -y libc6-dev)"

mkdir -p "$OUT"
if [ -n "${VIGIL_GUEST_CACHE:-}" ]; then
    CACHE=$VIGIL_GUEST_CACHE
elif mkdir -p /var/cache/vigil-guest 2>/dev/null && [ -w /var/cache/vigil-guest ]; then
    CACHE=/var/cache/vigil-guest
else
    CACHE=$OUT/cache
fi
mkdir -p "$CACHE/debs" || die "cannot create cache $CACHE"

# ---- kernel package -----------------------------------------------------------
if [ -n "${VIGIL_GUEST_KERNEL:-}" ]; then
    KPKG=$VIGIL_GUEST_KERNEL
else
    KPKG=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null \
        | awk '{print $1}' | sort -V | tail -n 1 || true)
    if [ -z "$KPKG" ]; then
        # No apt index (offline?): fall back to the newest package already cached.
        KPKG=$(ls "$CACHE/debs" 2>/dev/null | sed -n 's/^\(linux-image-6\.1\.0-[0-9]*-amd64\)_.*\.deb$/\1/p' | sort -V | tail -n 1 || true)
        [ -n "$KPKG" ] || die "no linux-image-6.1.0-*-amd64 in apt-cache and none cached in $CACHE/debs (run apt-get update?)"
        say "apt-cache has no kernel package; using cached $KPKG"
    fi
fi
KVER=${KPKG#linux-image-}
DEB=$(ls "$CACHE/debs/${KPKG}"_*_amd64.deb 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$DEB" ]; then
    say "downloading $KPKG into $CACHE/debs"
    (cd "$CACHE/debs" && apt-get download "$KPKG" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
    DEB=$(ls "$CACHE/debs/${KPKG}"_*_amd64.deb 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$DEB" ] || die "apt-get download $KPKG failed"
fi
say "kernel package $(basename "$DEB") (kernel $KVER)"

# ---- extract kernel + needed modules (cached per package file) ----------------
KDIR=$CACHE/kernel-$(basename "$DEB" .deb)
if [ ! -e "$KDIR/.done" ]; then
    say "extracting $(basename "$DEB") (dpkg -x)"
    rm -rf "$KDIR" "$KDIR.tmp"
    mkdir -p "$KDIR.tmp/x"
    dpkg -x "$DEB" "$KDIR.tmp/x"
    [ -f "$KDIR.tmp/x/boot/vmlinuz-$KVER" ] || die "$DEB has no boot/vmlinuz-$KVER"
    mkdir -p "$KDIR.tmp/mods/lib/modules/$KVER"
    cp "$KDIR.tmp/x/boot/vmlinuz-$KVER" "$KDIR.tmp/vmlinuz"
    # Uncompressed ELF vmlinux from the bzImage payload (what scripts/extract-vmlinux
    # does). Debian's kernel is xz with the x86 BCJ filter, which busybox's unxz
    # cannot decode: use xz(1), else python3's lzma; without either, no vmlinux.
    off=$(grep -abo $'\xfd7zXZ\x00' "$KDIR.tmp/vmlinuz" | head -n 1 | cut -d: -f1 || true)
    if [ -n "$off" ]; then
        if command -v xz >/dev/null 2>&1; then
            tail -c +$((off + 1)) "$KDIR.tmp/vmlinuz" | xz -dcq > "$KDIR.tmp/vmlinux" 2>/dev/null || true
        elif command -v python3 >/dev/null 2>&1; then
            python3 -c 'import lzma,sys; d=open(sys.argv[1],"rb").read()[int(sys.argv[2]):]; sys.stdout.buffer.write(lzma.LZMADecompressor().decompress(d))' \
                "$KDIR.tmp/vmlinuz" "$off" > "$KDIR.tmp/vmlinux" || true
        fi
    fi
    if [ -s "$KDIR.tmp/vmlinux" ] && [ "$(head -c 4 "$KDIR.tmp/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ]; then
        say "extracted uncompressed vmlinux ($(stat -c %s "$KDIR.tmp/vmlinux") bytes)"
    else
        rm -f "$KDIR.tmp/vmlinux"
        say "warning: could not extract vmlinux (install xz-utils); only vmlinuz will be built"
    fi
    # depmod on the full tree to learn dependencies
    depmod -b "$KDIR.tmp/x" "$KVER"
    DEP=$KDIR.tmp/x/lib/modules/$KVER/modules.dep
    # Ordered closure: dependencies first (modules.dep lists them last-loaded-first).
    order=()
    visit() {
        local name=$1 path deps d i
        path=$(awk -F: -v n="/$name.ko" 'index($1, n) && substr($1, length($1)-length(n)+1) == n {print $1; exit}' "$DEP")
        if [ -z "$path" ]; then
            if grep -q "/$name.ko\$" "$KDIR.tmp/x/lib/modules/$KVER/modules.builtin" 2>/dev/null; then return 0; fi
            die "module $name not found in $KPKG"
        fi
        for i in "${order[@]:-}"; do [ "$i" = "$path" ] && return 0; done
        deps=$(awk -F: -v p="$path" '$1 == p {print $2; exit}' "$DEP")
        local arr=($deps)
        for ((i = ${#arr[@]} - 1; i >= 0; i--)); do
            d=$(basename "${arr[$i]}" .ko)
            visit "$d"
        done
        for i in "${order[@]:-}"; do [ "$i" = "$path" ] && return 0; done
        order+=("$path")
    }
    for m in $MODULES; do visit "$m"; done
    : > "$KDIR.tmp/vigil-modules"
    for p in "${order[@]}"; do
        mkdir -p "$KDIR.tmp/mods/lib/modules/$KVER/$(dirname "$p")"
        cp "$KDIR.tmp/x/lib/modules/$KVER/$p" "$KDIR.tmp/mods/lib/modules/$KVER/$p"
        echo "$p" >> "$KDIR.tmp/vigil-modules"
    done
    for f in modules.order modules.builtin modules.builtin.modinfo; do
        [ -f "$KDIR.tmp/x/lib/modules/$KVER/$f" ] && cp "$KDIR.tmp/x/lib/modules/$KVER/$f" "$KDIR.tmp/mods/lib/modules/$KVER/"
    done
    depmod -b "$KDIR.tmp/mods" "$KVER"
    rm -rf "$KDIR.tmp/x"
    touch "$KDIR.tmp/.done"
    mv "$KDIR.tmp" "$KDIR"
fi
say "modules (load order): $(tr '\n' ' ' < "$KDIR/vigil-modules" | sed 's|[^ ]*/||g; s|\.ko||g')"

# ---- up to date? ----------------------------------------------------------------
KEY=$( {
    echo "epoch $EPOCH"
    echo "kernel $(basename "$DEB")"
    echo "modules $MODULES"
    gcc --version | head -n 1
    sha256sum "$GUEST_DIR/build.sh" "$GUEST_DIR/workload.c" "$GUEST_DIR/init" "$BUSYBOX" \
        "$KDIR/vmlinuz" "$KDIR/vigil-modules" /usr/lib/x86_64-linux-gnu/libc.a | awk '{print $1}'
} | sha256sum | awk '{print $1}')
if [ "${VIGIL_GUEST_FORCE:-0}" != 1 ] && [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/initramfs.cpio.gz" ] \
    && { [ ! -f "$KDIR/vmlinux" ] || [ -f "$OUT/vmlinux" ]; } \
    && [ "$(cat "$OUT/.build-key" 2>/dev/null)" = "$KEY" ]; then
    say "up to date: $OUT/vmlinuz $OUT/initramfs.cpio.gz ($KPKG)"
    exit 0
fi

# ---- workload -----------------------------------------------------------------------
WORK=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
say "compiling workload.c (gcc -static)"
gcc -O2 -Wall -static -pthread -ffile-prefix-map="$GUEST_DIR"=. -Wl,--build-id=none \
    -o "$WORK/workload" "$GUEST_DIR/workload.c" || die "gcc failed"
strip "$WORK/workload" 2>/dev/null || true

# ---- initramfs tree ---------------------------------------------------------------------
R=$WORK/root
mkdir -p "$R"/{bin,dev,proc,sys,tmp,run,etc,root,lib}
cp "$BUSYBOX" "$R/bin/busybox"
for a in $("$BUSYBOX" --list); do
    [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"
done
ln -s bin "$R/sbin"
cp "$WORK/workload" "$R/bin/workload"
install -m 0755 "$GUEST_DIR/init" "$R/init"
cp -a "$KDIR/mods/lib/modules" "$R/lib/"
cp "$KDIR/vigil-modules" "$R/etc/vigil-modules"
echo "root:x:0:0:root:/root:/bin/sh" > "$R/etc/passwd"
echo "root:x:0:" > "$R/etc/group"
echo "$KPKG $(basename "$DEB")" > "$R/etc/vigil-guest-kernel"
if [ "$(id -u)" = 0 ]; then
    mknod -m 600 "$R/dev/console" c 5 1
    mknod -m 666 "$R/dev/null" c 1 3
fi
chmod 1777 "$R/tmp"
find "$R" -exec touch -h -d "@$EPOCH" {} +

say "packing initramfs (cpio newc, sorted, mtime $EPOCH)"
(cd "$R" && find . -mindepth 1 | sort | cpio --quiet -o -H newc -R 0:0 --reproducible) \
    | gzip -n -9 > "$WORK/initramfs.cpio.gz"
cp "$KDIR/vmlinuz" "$WORK/vmlinuz"
mv -f "$WORK/vmlinuz" "$OUT/vmlinuz"
if [ -f "$KDIR/vmlinux" ]; then
    cp "$KDIR/vmlinux" "$WORK/vmlinux" && mv -f "$WORK/vmlinux" "$OUT/vmlinux"
else
    rm -f "$OUT/vmlinux"
fi
mv -f "$WORK/initramfs.cpio.gz" "$OUT/initramfs.cpio.gz"
echo "$KPKG" > "$OUT/kernel-package"
echo "$KEY" > "$OUT/.build-key"
say "built $OUT/vmlinuz ($(stat -c %s "$OUT/vmlinuz") bytes) and $OUT/initramfs.cpio.gz ($(stat -c %s "$OUT/initramfs.cpio.gz") bytes)"
say "initramfs sha256 $(sha256sum "$OUT/initramfs.cpio.gz" | awk '{print $1}')"
