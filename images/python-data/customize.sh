#!/bin/sh
# Runs inside the new root filesystem (chroot) after the packages are installed, as root.
set -eu
# No display in a sandbox: matplotlib draws with Agg (Debian's default backend is TkAgg).
sed -i 's/^backend *:.*/backend: Agg/' /etc/matplotlibrc
grep -qx 'backend: Agg' /etc/matplotlibrc
# matplotlib's font cache, built now. At run time the root is read-only and matplotlib uses a
# cache only in a writable directory, so each interpreter (site's sitecustomize, below) points
# MPLCONFIGDIR at /tmp/matplotlib and links the prebuilt cache there: two system calls instead
# of a font scan (0.3-0.5 s of the 1.1-1.5 s first `import matplotlib.pyplot` in gVisor here)
# that would also leave .cache and .config in /work.
cache=/usr/share/sandgate/matplotlib
install -d -m 0755 "$cache"
MPLCONFIGDIR="$cache" python3 -c 'import matplotlib.font_manager'
fontlist=$(cd "$cache" && ls fontlist-v*.json)
cat >> /etc/python3.11/sitecustomize.py <<PY

# Sandgate: matplotlib's prebuilt font cache (see images/python-data/customize.sh).
def _sandgate_matplotlib_cache():
    import os
    if "MPLCONFIGDIR" in os.environ:
        return
    os.environ["MPLCONFIGDIR"] = "/tmp/matplotlib"
    try:
        os.mkdir("/tmp/matplotlib", 0o700)
        os.symlink("$cache/$fontlist", "/tmp/matplotlib/$fontlist")
    except OSError:
        pass


_sandgate_matplotlib_cache()
del _sandgate_matplotlib_cache
PY
# The standard library's bytecode (Debian compiles its packages' modules when installing them).
python3 -m compileall -q /usr/lib/python3.11 >/dev/null 2>&1 || true
