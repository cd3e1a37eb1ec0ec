# syntax=docker/dockerfile:1
#
# piivault's container image: a static binary on distroless, non-root.
#
#   docker build -t piivault .
#   docker build --build-arg VERSION=0.1.0 --build-arg COMMIT="$(git rev-parse HEAD)" -t piivault:0.1.0 .
#
# Stages: build (the Go toolchain of go.mod's go line), demo-build and demo
# (the setup step, demo storefront and TOTP helper compose.yaml runs; never
# for production), and piivault, last, so it is what a plain `docker build`
# makes. deploy/container_test.go checks this file statically (no Docker
# engine runs on the development machines).

# ---- build: piivault, static --------------------------------------------
FROM golang:1.26.8 AS build
# go.mod's toolchain exactly: a mismatch fails here instead of downloading another.
ENV CGO_ENABLED=0 GOTOOLCHAIN=local
WORKDIR /src
COPY . .
# VERSION replaces the built-in version (main.version) when given. The commit
# is not stamped into the binary (.git stays out of the build context, so
# `piivault version` says "unknown"); COMMIT labels the image instead.
ARG VERSION
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -buildvcs=false \
      -ldflags="-s -w ${VERSION:+-X main.version=$VERSION}" \
      -o /out/piivault ./cmd/piivault

# ---- demo-build: the demo storefront and the TOTP helper ----------------
FROM build AS demo-build
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -buildvcs=false -ldflags="-s -w" -o /out/storefront ./examples/storefront && \
    go build -trimpath -buildvcs=false -ldflags="-s -w" -o /out/totp ./scripts/totp

# ---- demo: compose.yaml's setup and storefront services. NOT FOR PRODUCTION.
# A shell for the two scripts, and the vault CLI (from the image compose.yaml
# runs Vault from) with which setup gives the AppRole its role id.
FROM alpine:3.22 AS demo
COPY --from=hashicorp/vault:1.21 /bin/vault /usr/local/bin/vault
COPY --from=build /out/piivault /usr/local/bin/piivault
COPY --from=demo-build /out/storefront /out/totp /usr/local/bin/
COPY --chmod=0555 deploy/compose/setup.sh /usr/local/bin/piivault-demo-setup
COPY --chmod=0555 deploy/compose/storefront.sh /usr/local/bin/piivault-demo-storefront
# The shared volume takes this directory's owner and mode when it is created.
RUN mkdir -p /run/piivault && chown 65532:65532 /run/piivault && chmod 0700 /run/piivault
USER 65532:65532
ENTRYPOINT []
CMD ["piivault-demo-setup"]

# ---- piivault: the service image -----------------------------------------
# distroless/static: CA certificates, tzdata, /etc/passwd with nonroot
# (65532), no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot AS piivault
ARG VERSION
ARG COMMIT
LABEL org.opencontainers.image.title="piivault" \
      org.opencontainers.image.description="A short-lived vault for e-commerce shipping PII" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
COPY --from=build /out/piivault /piivault
# piivault's default is loopback, which nothing outside a container reaches.
ENV PIIVAULT_LISTEN=0.0.0.0:8080
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/piivault"]
CMD ["serve"]
