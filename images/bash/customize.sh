#!/bin/sh
# Runs inside the new root filesystem (chroot) after the packages are installed, as root.
set -eu
# coreutils 9.1's `ls` and `stat` call statx() with AT_NO_AUTOMOUNT, which Debian's runsc
# (2022-12) refuses with EINVAL: `ls -l` shows `?` for every field and `stat f` fails. busybox's
# use fstatat(); /usr/local/bin comes first on the sandbox's PATH.
for tool in ls stat; do
  ln -s /bin/busybox "/usr/local/bin/$tool"
done
