#!/bin/sh
# Runs inside the new root filesystem (chroot) after the packages are installed, as root.
set -eu
# npm's global settings (Debian reads /etc/npmrc): no update check against the public registry,
# no funding banner. `npm install` goes to the registry a request names, through the egress
# proxy its policy allows; the cache goes to the home, /work/.npm.
printf 'update-notifier=false\nfund=false\n' > /etc/npmrc
