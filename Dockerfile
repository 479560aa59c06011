# Herald: broker and edge in one image (the command picks the process).
# Built from Debian 12 packages only, like the project itself.
FROM debian:bookworm-slim AS build
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
COPY tests tests
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHERALD_TESTS=OFF \
    && cmake --build build -j "$(nproc)" --target herald-broker herald-edge herald

FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libevent-2.1-7 libevent-core-2.1-7 libevent-extra-2.1-7 libevent-pthreads-2.1-7 \
        libmsgpackc2 libssl3 libjansson4 libhttp-parser2.9 curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/herald-broker /src/build/herald-edge /src/build/herald /usr/local/bin/
COPY conf /etc/herald
EXPOSE 7400 6380 8400 8080
CMD ["herald-broker", "/etc/herald/broker.conf", "--bind", "0.0.0.0"]
