# Multi-stage build of the `chat` binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin chat

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/chat /usr/local/bin/chat
ENV CHAT_LISTEN=0.0.0.0:3000
EXPOSE 3000
ENTRYPOINT ["chat"]
CMD ["serve"]
