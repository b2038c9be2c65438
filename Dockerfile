# syntax=docker/dockerfile:1
# The worker (default), the starter or the HTTP API (BINARY=api) as a small
# static image:
#   docker build -t lifecycle-worker .
#   docker build --build-arg BINARY=starter -t lifecycle-starter .
# Both binaries are built in one stage, so the second image reuses it.

FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/ ./worker ./starter ./cmd/api

FROM gcr.io/distroless/static-debian12:nonroot
ARG BINARY=worker
COPY --from=build /out/${BINARY} /app
USER nonroot:nonroot
# HTTP_ADDR and METRICS_ADDR (set them to 0.0.0.0:PORT in a container).
EXPOSE 8080 9090
ENTRYPOINT ["/app"]
