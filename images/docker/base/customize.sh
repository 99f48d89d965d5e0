#!/bin/sh
# Runs inside the new root filesystem (chroot) after debootstrap, as root.
set -eu
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /usr/share/doc/* /usr/share/man/*
