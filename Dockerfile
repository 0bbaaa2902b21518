# puttykit for batch jobs: one binary (deno compile), busybox-style links plink/pscp/psftp/putty,
# run as a non-root user. The steps are the ones scripts/build_image.sh performs (and the tests
# run) on machines without a Docker engine.
#
#   docker build -t puttykit .
#   docker run --rm -v "$HOME/.putty:/putty:ro" -e PUTTYDIR=/putty \
#     -v "$PWD/id.ppk:/keys/id.ppk:ro" puttykit plink -batch -i /keys/id.ppk user@host uptime

ARG DENO_VERSION=2.9.6

FROM denoland/deno:bin-${DENO_VERSION} AS deno

FROM debian:bookworm-slim AS build
COPY --from=deno /deno /usr/local/bin/deno
WORKDIR /src
COPY deno.json deno.lock mod.ts ./
COPY cmd ./cmd
COPY lib ./lib
COPY scripts/build_image.sh scripts/deno_flags.ts ./scripts/
RUN sh scripts/build_image.sh /rootfs

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /rootfs/ /
USER nonroot
WORKDIR /home/nonroot
ENTRYPOINT ["/usr/local/bin/puttykit"]
CMD ["--help"]
