# syntax=docker/dockerfile:1
# Multi-stage build: a release binary built with the pinned toolchain, copied into a distroless
# runtime image (glibc + libgcc only, no shell) that runs as the non-root user 65532.
#
#   docker build --build-arg ISSUERD_BUILD_REV=$(git rev-parse --short HEAD) -t issuerd .
#   docker run -p 8080:8080 -e ISSUERD_ISSUER=https://oidc.example.com \
#     -v /etc/kubernetes/pki/sa.pub:/etc/issuerd/keys/sa.pub:ro issuerd
#
# The README's "Installing" section lists the image's user, ports, volumes and variables.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits reuse the cached dependency layer. build.rs is copied too:
# cargo runs it for the dummy crate as well.
COPY Cargo.toml Cargo.lock build.rs ./
COPY .cargo ./.cargo
RUN mkdir src benches \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && printf 'fn main() {}\n' > benches/render.rs && cp benches/render.rs benches/request.rs \
 && cargo build --release --locked --bin issuerd \
 && rm -rf src benches
COPY src ./src
COPY benches ./benches
# The revision `issuerd --version` shows: .git is not in the build context (.dockerignore).
ARG ISSUERD_BUILD_REV=
ENV ISSUERD_BUILD_REV=${ISSUERD_BUILD_REV}
RUN touch src/main.rs src/lib.rs build.rs && cargo build --release --locked --bin issuerd

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/issuerd /usr/local/bin/issuerd
COPY deploy/docker/issuerd.toml /etc/issuerd/issuerd.toml
COPY LICENSE /usr/share/doc/issuerd/LICENSE
# Read by every subcommand; ISSUERD_* variables and flags override its keys.
ENV ISSUERD_CONFIG=/etc/issuerd/issuerd.toml
# Mount the ServiceAccount public key(s) at /etc/issuerd/keys (a file in it, or the directory),
# read-only and readable by UID 65532.
USER 65532:65532
# 8080: the issuer documents, /healthz and /readyz. 9090: the admin listener (/metrics,
# /statusz) when ISSUERD_ADMIN_LISTEN=0.0.0.0:9090 is set.
EXPOSE 8080 9090
# Distroless has no shell or curl: the binary probes itself (exit 0 on 200). Serving TLS
# (ISSUERD_TLS_CERT), probe https://127.0.0.1:8080/healthz instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/issuerd", "probe", "--timeout", "3s", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/issuerd"]
CMD ["serve"]
