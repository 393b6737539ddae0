# syntax=docker/dockerfile:1
# One image with both binaries, built statically for musl, for linux/amd64 and linux/arm64:
#   /usr/local/bin/akv-webhook  the admission webhook (ENTRYPOINT)
#   /usr/local/bin/akv-env      copied into injected pods by their init container
#                               (`akv-env install /akv-injector`); built for size
#                               (profile release-size) since it lands in every pod
# Build: docker buildx build --platform linux/amd64,linux/arm64 -t akv-injector:0.1.0 .
# The build stage runs on the builder's own platform and cross-compiles for TARGETARCH
# with cargo-zigbuild (zig as the C compiler of ring's C and assembly parts, and as the
# linker), so no emulation is needed. scripts/check-dockerfile lints this file and builds
# the binaries the same way, for both architectures.

ARG RUST_VERSION=1.95
FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS build
ARG TARGETARCH
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv=3.11.2-1+b1 \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/zig \
 && /opt/zig/bin/pip install --no-cache-dir cargo-zigbuild==0.24.1 ziglang==0.17.1 \
 && rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl
ENV PATH=/opt/zig/bin:$PATH
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    case "$TARGETARCH" in \
      amd64) RUST_TARGET=x86_64-unknown-linux-musl ;; \
      arm64) RUST_TARGET=aarch64-unknown-linux-musl ;; \
      *) echo "unsupported TARGETARCH '$TARGETARCH': build for linux/amd64 or linux/arm64" >&2; exit 1 ;; \
    esac \
 && cargo zigbuild --profile dist --locked --target $RUST_TARGET --bin akv-webhook \
 && cargo zigbuild --profile release-size --locked --target $RUST_TARGET --bin akv-env \
 && mkdir -p /out \
 && cp target/$RUST_TARGET/dist/akv-webhook \
       target/$RUST_TARGET/release-size/akv-env /out/

# Distroless static: no shell, no libc, runs as nonroot (65532) by default.
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="akv-injector" \
      org.opencontainers.image.description="Kubernetes admission webhook that injects Azure Key Vault secrets into pods" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/akv-webhook /out/akv-env /usr/local/bin/
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/akv-webhook"]
