# syntax=docker/dockerfile:1
#
# The mlops runtime image: the same `mlops` binary as on a laptop, with XGBoost's native library,
# run by the generated Kubernetes manifests (training Jobs, the serving agent, the controller).
#
#   docker build -t mlops:0.1.0 .          # from the repository root (BuildKit, linux/amd64)
#   docker run --rm mlops:0.1.0 --version
#
# Builder: Debian with Rust; scripts/install-xgboost.sh fetches the pinned xgboost-cpu wheel
# (SHA-256 checked) and installs libclang for bindgen, as on a developer's machine. The library
# is copied to /opt/mlops/xgboost/lib and the binary is built against it there, so the rpath the
# build bakes in (build.rs) is the path the final image has.
# Final: Debian slim, the library and the binary, a non-root user, WORKDIR /var/lib/mlops (the
# pods' root: relative source paths resolve here; the shared volume mounts at ./data).

ARG RUST_VERSION=1.89
ARG DEBIAN_RELEASE=bookworm

FROM --platform=linux/amd64 rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src
# XGBoost first, in a layer of its own: it changes only with the pinned version. libxgboost.so
# finds its bundled libgomp through $ORIGIN/../../xgboost_cpu.libs, laid out as in .deps.
COPY scripts/install-xgboost.sh scripts/
COPY scripts/lib/pip.sh scripts/lib/
RUN MLOPS_XGBOOST_NATIVE_ONLY=1 scripts/install-xgboost.sh \
 && mkdir -p /opt/mlops \
 && cp -a .deps/xgboost /opt/mlops/xgboost \
 && ln -s xgboost/lib /opt/mlops/xgboost_cpu.libs
# Wins over .cargo/config.toml's `.deps/xgboost/lib` (cargo's [env] never overrides).
ENV XGBOOST_LIB_DIR=/opt/mlops/xgboost/lib
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin mlops \
 && install -D -m 0755 target/release/mlops /out/mlops \
 && /out/mlops --version

FROM --platform=linux/amd64 debian:${DEBIAN_RELEASE}-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="mlops" \
      org.opencontainers.image.description="mlops runtime: ingest, materialise features, train XGBoost, serve, monitor and retrain from a compiled SystemSpec" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# libstdc++ and libgcc_s, which libxgboost needs beside glibc, are part of the slim image (apt
# needs them); the binary speaks plain HTTP only, so no TLS libraries or certificates.
COPY --from=builder /opt/mlops /opt/mlops
COPY --from=builder /out/mlops /usr/local/bin/mlops
RUN groupadd --system --gid 10001 mlops \
 && useradd --system --uid 10001 --gid mlops --home-dir /var/lib/mlops --no-create-home \
      --shell /usr/sbin/nologin mlops \
 && mkdir -p /var/lib/mlops/data /etc/mlops \
 && chown -R 10001:10001 /var/lib/mlops \
 && mlops --version
# The pods' contract (the manifests set the same values): the compiled spec from the ConfigMap,
# the root, the shared volume.
ENV MLOPS_SPEC=/etc/mlops/spec.json \
    MLOPS_ROOT=/var/lib/mlops \
    MLOPS_DATA_DIR=/var/lib/mlops/data
WORKDIR /var/lib/mlops
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["mlops"]
CMD ["--help"]
