#!/bin/sh
# Runs inside the new root filesystem (chroot) after debootstrap, as root.
set -eu
# Mount points the sandbox uses; the root is read-only at run time.
mkdir -p /work /sandgate
# Nothing to update or install at run time: drop apt's caches and lists to shrink the image.
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /usr/share/doc/* /usr/share/man/*
# Compile the standard library's bytecode now, so a read-only root does not cost each run.
python3 -m compileall -q /usr/lib/python3.11 >/dev/null 2>&1 || true
