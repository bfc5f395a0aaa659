# Stand-in for SeaweedFS's image where no registry can be reached: moto's S3 server (from PyPI)
# on port 8333. It keeps objects in memory and does not check signatures, so links to objects
# work unsigned, as with the public-read bucket of docker-compose.s3.yml. Built by
# imgpipe_dev.standins; deploy/standins/compose.yml runs it and makes the bucket.
ARG BASE
FROM ${BASE}

ARG MOTO_VERSION
RUN --mount=type=secret,id=proxy-ca \
    if [ -s /run/secrets/proxy-ca ]; then export PIP_CERT=/run/secrets/proxy-ca; fi; \
    pip install --no-cache-dir --disable-pip-version-check --root-user-action=ignore \
      "moto[server]==${MOTO_VERSION}"

RUN groupadd --system --gid 10002 moto \
    && useradd --system --uid 10002 --gid moto --no-create-home --home-dir /nonexistent moto
USER moto
CMD ["moto_server", "-H", "0.0.0.0", "-p", "8333"]
