# Herald: broker and edge in one image (the command picks the process).
# Built from Debian 12 packages only, like the project itself, so no image
# registry is needed beyond a local debian:bookworm-slim.
#
#   docker build --target build -t herald-build .
#   docker-compose build                                    (or: docker build -t herald .)
#
# Builders that keep a stage as an image of its own (the legacy Docker
# builder, podman) would leave the first stage behind untagged (dangling);
# the first line tags it, and the second then reuses it from the cache. After
# a rebuild from changed sources, the previous build stage is dangling:
#   docker image prune -f --filter label=org.herald.stage=build
# removes those and keeps the current one (and so the cache). README
# "docker-compose".
FROM debian:bookworm-slim AS build
LABEL org.herald.stage=build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config libevent-dev libmsgpack-dev libssl-dev \
        libjansson-dev libhttp-parser-dev check \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY common common
COPY broker broker
COPY edge edge
COPY tools tools
COPY bench bench
COPY conf conf
COPY dist dist
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHERALD_TESTS=OFF \
    && cmake --build build -j "$(nproc)" --target herald-broker herald-edge herald

FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libevent-2.1-7 libevent-core-2.1-7 libevent-extra-2.1-7 libevent-pthreads-2.1-7 \
        libevent-openssl-2.1-7 \
        libmsgpackc2 libssl3 libjansson4 libhttp-parser2.9 curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin herald
COPY --from=build /src/build/herald-broker /src/build/herald-edge /src/build/herald /usr/local/bin/
COPY dist/docker/entrypoint.sh /usr/local/bin/herald-entrypoint
COPY conf /etc/herald
USER herald
EXPOSE 7400 6380 8400 8080
ENTRYPOINT ["herald-entrypoint"]
CMD ["herald-broker", "/etc/herald/broker.conf", "--bind", "0.0.0.0"]
