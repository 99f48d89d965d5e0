# The Sandgate service as a container. Built here from local parts only, no registry:
#   BASE    a Debian bookworm with python3 + venv, imported with `docker import` from a
#           debootstrap root filesystem (images/docker/base; `.ci/docker service-image` does it)
#   .state/wheels   the service and its dependencies as wheels (`pip wheel`), so the build
#           needs no network (`.ci/docker` builds with --network=none)
# It runs the docker backend against the host's dockerd (see docker-compose.yml and the README's
# trust model): the process runs as root inside the container because it writes the host's
# cgroups of its sandboxes and holds the Docker socket, which is root on the host in any case;
# the compose file drops every capability but DAC_OVERRIDE and makes the root read-only.
ARG BASE=sandgate/base:latest
FROM ${BASE}

ENV PATH=/opt/sandgate/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SANDGATE_HOST=0.0.0.0 \
    SANDGATE_PORT=8000 \
    SANDGATE_BACKEND=docker \
    SANDGATE_STATE_DIR=/var/lib/sandgate \
    SANDGATE_POLICY_DIR=/etc/sandgate/policies \
    SANDGATE_IMAGES_DIR=/usr/share/sandgate/images \
    SANDGATE_WORKERS=2

# Dependencies first (the versions the test suite ran with; the dev tools among them are not
# installed): this layer is rebuilt only when they change.
COPY .state/wheels/deps /tmp/wheels
RUN python3 -m venv /opt/sandgate \
 && /opt/sandgate/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels \
      -r /tmp/wheels/runtime.txt \
 && rm -rf /tmp/wheels
COPY .state/wheels/app /tmp/app
RUN /opt/sandgate/bin/pip install --no-cache-dir --no-index --no-deps /tmp/app/*.whl \
 && rm -rf /tmp/app
# The recipes only (their hash names the sandbox images the service looks for), and the
# policies that ship (a deployment mounts its own over them).
COPY images /usr/share/sandgate/images
COPY policies /etc/sandgate/policies

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=90s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['SANDGATE_PORT'] + '/health', timeout=2)"]
# uvicorn stops accepting on SIGTERM and lets running requests (executions) finish within its
# graceful-shutdown timeout (30 s) before it exits; compose's stop_grace_period is longer.
STOPSIGNAL SIGTERM
CMD ["sandgate", "serve"]
