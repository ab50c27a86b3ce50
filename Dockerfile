# The sidecar image: cert-sidecar plus the ca-cert and local-ca tools, nothing else.
# With --build-arg EXTRAS=operator, the operator image: the same plus kopf and the kubernetes
# client, run with `clientcert-operator` as the command (the operator chart sets it).
#
#   docker build -t lambda-client-certs:dev .
#   docker build --build-arg EXTRAS=operator -t lambda-client-certs-operator:dev .
#   docker build --build-arg BASE_IMAGE=lcc-base:bookworm-1 -t lcc-sidecar:dev .   # local base
#   docker build --build-arg PIP_CA_PEM="$(cat /usr/local/share/ca-certificates/*.crt)" ...
#
# Classic builder only (Debian ships no buildx): no `RUN --mount`, no syntax directive.
# The builder and the final stage must use the same base: the venv links to its python.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS builder

# PEM text of extra CAs for a TLS-intercepting proxy. It lives in this stage only; the final
# stage never declares it, so neither the file nor the value reaches the shipped image.
ARG PIP_CA_PEM=""
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PIP_CERT=/build/pip-ca.pem

WORKDIR /build
# pip's PIP_CERT replaces its trust store, so the bundle is the base's system bundle (or, on a
# base without one, the certifi bundle pip carries) followed by the extra CAs.
RUN python3 -m venv /opt/venv \
 && if [ -s /etc/ssl/certs/ca-certificates.crt ]; then \
      cat /etc/ssl/certs/ca-certificates.crt > /build/pip-ca.pem; \
    else \
      /opt/venv/bin/python -c "from pip._vendor import certifi; print(open(certifi.where()).read())" \
        > /build/pip-ca.pem; \
    fi \
 && printf '%s\n' "$PIP_CA_PEM" >> /build/pip-ca.pem

# Dependencies first, read from pyproject.toml alone, so that editing the sources reuses this
# layer. The build backend goes in too, so the project itself installs without the network.
COPY pyproject.toml /build/src/
RUN EXTRAS="$EXTRAS" python3 -c 'import os, tomllib; \
p = tomllib.load(open("/build/src/pyproject.toml", "rb")); \
extras = [r for e in os.environ["EXTRAS"].split(",") if e for r in p["project"]["optional-dependencies"][e]]; \
print("\n".join(p["build-system"]["requires"] + p["project"]["dependencies"] + extras))' \
      > /build/requirements.txt \
 && /opt/venv/bin/pip install -q -r /build/requirements.txt

COPY README.md /build/src/
COPY cacore /build/src/cacore
COPY localca /build/src/localca
COPY cacli /build/src/cacli
COPY sidecar /build/src/sidecar
COPY gitops /build/src/gitops
COPY operator /build/src/operator
# Without the operator extra, kopf and kubernetes stay out, so the operator's console script,
# which could only fail there, is removed. pip and setuptools are not needed at run time.
RUN /opt/venv/bin/pip install -q --no-deps --no-build-isolation /build/src \
 && /opt/venv/bin/python -m pip uninstall -q -y setuptools pip \
 && rm -f /opt/venv/bin/activate* /opt/venv/bin/Activate.ps1 \
 && case ",$EXTRAS," in *,operator,*) ;; *) rm -f /opt/venv/bin/clientcert-operator ;; esac

FROM ${BASE_IMAGE}

LABEL org.opencontainers.image.title="lambda-client-certs sidecar" \
      org.opencontainers.image.description="Keeps X.509 client certificates from the serverless CA's Lambda fresh in /certs" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"

ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# A fresh named volume mounted here copies this owner and mode, so the non-root user can
# write to it while the root filesystem is read-only. Before the venv: stays cached.
RUN mkdir -p /certs && chown 65532:65532 /certs && chmod 0700 /certs
VOLUME ["/certs"]
COPY --from=builder /opt/venv /opt/venv
WORKDIR /certs

USER 65532:65532
ENTRYPOINT ["/opt/venv/bin/cert-sidecar"]
