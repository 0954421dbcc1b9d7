# syntax=docker/dockerfile:1
# Multi-stage build: a release binary built with the pinned toolchain, copied into a distroless
# runtime image (glibc + libgcc only, no shell) that runs as a non-root user.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits reuse the cached dependency layer.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src benches \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && printf 'fn main() {}\n' > benches/render.rs && cp benches/render.rs benches/request.rs \
 && cargo build --release --locked --bin issuerd \
 && rm -rf src benches
COPY src ./src
COPY benches ./benches
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin issuerd

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/issuerd /usr/local/bin/issuerd
COPY config/issuerd.toml /etc/issuerd/issuerd.toml
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["issuerd"]
CMD ["serve"]
