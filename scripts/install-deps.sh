#!/usr/bin/env bash
# Installs the Debian packages Vigil needs (idempotent; seconds when already there).
set -euo pipefail
pkgs=(etcd-server etcd-client qemu-system-x86 qemu-utils busybox-static cpio kmod iproute2 procps psmisc curl xz-utils libc6-dev)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then echo "== packages: all present"; exit 0; fi
if [ "$(id -u)" != 0 ]; then echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; fi
echo "== installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: without it apt drags in ~200 packages and a systemd upgrade.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's etcd-server may start a system etcd on 127.0.0.1:2379; Vigil never uses it.
echo "== packages installed"
