# Stand-in for the `mongo` image where no registry can be reached: SecantusDB (a MongoDB
# wire-protocol server on WiredTiger, from PyPI) on port 27017 with its data in /data/db, and a
# `mongosh` that answers the compose healthcheck. Built by imgpipe_dev.standins.
ARG BASE
FROM ${BASE}

ARG SECANTUSDB_VERSION
ARG PYMONGO_VERSION
RUN --mount=type=secret,id=proxy-ca \
    if [ -s /run/secrets/proxy-ca ]; then export PIP_CERT=/run/secrets/proxy-ca; fi; \
    pip install --no-cache-dir --disable-pip-version-check --root-user-action=ignore \
      "secantusdb==${SECANTUSDB_VERSION}" "pymongo==${PYMONGO_VERSION}"

COPY mongosh /usr/local/bin/mongosh
RUN chmod 755 /usr/local/bin/mongosh \
    && groupadd --system --gid 999 mongodb \
    && useradd --system --uid 999 --gid mongodb --no-create-home --home-dir /data/db mongodb \
    && mkdir -p /data/db && chown mongodb:mongodb /data/db

USER mongodb
# --standalone: otherwise it advertises a one-node replica set at 0.0.0.0:27017, which clients
# in other containers cannot select. --sync-on-commit: a SIGKILL loses nothing acknowledged.
CMD ["python3", "-m", "secantus", "--host", "0.0.0.0", "--port", "27017", \
     "--storage-path", "/data/db", "--sync-on-commit", "--standalone", "--log-level", "WARNING"]
