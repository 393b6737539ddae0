# syntax=docker/dockerfile:1
# One image with both binaries, built statically for musl:
#   /usr/local/bin/akv-webhook  the admission webhook (ENTRYPOINT)
#   /usr/local/bin/akv-env      copied into injected pods by their init container
#                               (`akv-env install /akv-injector`); built for size
#                               (profile release-size) since it lands in every pod
# Build: docker build -t akv-injector:0.1.0 .
# scripts/check-dockerfile lints this file and builds the binaries the same way.

ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS build
# musl-gcc compiles the C and assembly parts of dependencies (ring) for musl.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked --target x86_64-unknown-linux-musl --bin akv-webhook \
 && cargo build --profile release-size --locked --target x86_64-unknown-linux-musl --bin akv-env \
 && mkdir -p /out \
 && cp target/x86_64-unknown-linux-musl/dist/akv-webhook \
       target/x86_64-unknown-linux-musl/release-size/akv-env /out/

# Distroless static: no shell, no libc, runs as nonroot (65532) by default.
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="akv-injector" \
      org.opencontainers.image.description="Kubernetes admission webhook that injects Azure Key Vault secrets into pods" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/akv-webhook /out/akv-env /usr/local/bin/
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/akv-webhook"]
