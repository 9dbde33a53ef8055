# onboard-bot: the Discord chat-ops bot as a container (see docs/operations.md).
#
#   docker build -t onboard-bot .
#   docker run --init -d --name onboard-bot \
#     -v /etc/onboard-bot:/etc/onboard-bot:ro \
#     -v /srv/onboard-bot/secrets:/run/secrets:ro \
#     -v onboard-bot-data:/var/lib/onboard-bot \
#     -e DISCORD_TOKEN -p 127.0.0.1:9090:9090 onboard-bot
#
# /etc/onboard-bot holds bot.yaml, ssh_config and known_hosts; /run/secrets the database
# passwords and the SSH key (or pass them as environment variables); the volume keeps the
# bot's checkout of the platform repo.
#
# Config and secrets are mounted at run time, never baked in: nothing under config/ and no
# secret is copied into either stage (.dockerignore keeps them out of the build context too).
#
# Not built with Docker on the machine this was written on (it has no container engine).
# scripts/image-check carries this file out without one, reading its instructions: the
# context .dockerignore lets through, both stages in bubblewrap sandboxes on debootstrapped
# bookworm roots (with this host's Rust 1.95 and cargo registry in the build stage), the
# dependency layer compiling every dependency and the real build only onboard-bot, then, as
# uid 10001, the ENTRYPOINT, ssh, git, curl, ldd, a writable HOME and the HEALTHCHECK against
# a 200 and a 503 /healthz. It cannot check docker's own layer cache (only that the dependency
# layer's inputs are Cargo.toml and Cargo.lock) nor the base images' exact contents (a
# debootstrap minbase is close to, not equal to, debian:bookworm-slim). The binary itself is
# built and tested by scripts/test.

# --- build ------------------------------------------------------------------------------
# Same Debian release as the runtime stage, so the binary's glibc matches.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Set before the dependency layer: a profile change would rebuild every dependency.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols

# Dependencies first, against a dummy crate: this layer is rebuilt only when Cargo.toml or
# Cargo.lock change, not on every source edit (cargo-chef's idea, by hand).
# Cargo refuses a manifest whose declared [[bench]]/[[test]]/[[example]] files are missing,
# so each gets an empty stub at its default path (kept for the real build; never built).
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && awk -F'"' '/^\[\[(bench|test|example)\]\]/ { dir = /bench/ ? "benches" : /test/ ? "tests" : "examples"; next } \
        /^\[/ { dir = "" } dir && /^name *=/ { print dir "/" $2 ".rs" }' Cargo.toml \
    | while read -r stub; do mkdir -p "$(dirname "$stub")" && echo 'fn main() {}' > "$stub"; done \
 && cargo build --release --locked \
 && rm -rf src target/release/.fingerprint/onboard-bot-* target/release/deps/onboard_bot-* \
        target/release/deps/libonboard_bot-*

# The real crate. `sqlx::migrate!` embeds migrations/ at compile time. COPY keeps the files'
# own mtimes, which may be older than the dummy build: touch them so cargo rebuilds.
COPY src ./src
COPY migrations ./migrations
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin onboard-bot

# --- runtime ----------------------------------------------------------------------------
FROM debian:bookworm-slim
# openssh-client: the openssh crate drives the system's ssh (certbot and nginx on the VPS).
# git: the deploy-config steps clone, commit and push the platform repo.
# ca-certificates: TLS to Discord, the portal and the certificate checks.
# curl: the HEALTHCHECK below (git already pulls in libcurl, so it costs little).
# bash, tar and sed (in the base image) are what the platform's ./run deploy script uses.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssh-client git ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

# A system user without a login shell; its home holds the repo checkout (a volume) and ssh's
# control sockets. The group's gid is pinned too: `useradd --system --user-group` took the
# next free system gid (999 in scripts/image-check's bookworm root), which can change with
# the base image and then differ from the group of the volume's files.
RUN groupadd --system --gid 10001 onboard-bot \
 && useradd --system --uid 10001 --gid onboard-bot --home-dir /var/lib/onboard-bot --create-home \
        --shell /usr/sbin/nologin onboard-bot \
 && mkdir -p /etc/onboard-bot

COPY --from=build /src/target/release/onboard-bot /usr/local/bin/onboard-bot

USER onboard-bot
WORKDIR /var/lib/onboard-bot
VOLUME ["/var/lib/onboard-bot"]

# Mount the config here (or point ONBOARD_BOT_CONFIG elsewhere). In it, set
# `ops.listen: 0.0.0.0:9090` so the HEALTHCHECK and a Prometheus scraper reach /healthz and
# /metrics, `repo.checkout: /var/lib/onboard-bot/platform`, and secrets as `{file: /run/secrets/...}`
# or `{env: VAR}`.
# Logs are JSON lines on stderr, with run_id and step on every line of a run.
ENV ONBOARD_BOT_CONFIG=/etc/onboard-bot/bot.yaml \
    ONBOARD_BOT_LOG_FORMAT=json \
    ONBOARD_BOT_HEALTH_URL=http://127.0.0.1:9090/healthz \
    HOME=/var/lib/onboard-bot
EXPOSE 9090

# 503 until the state DB answers and the Discord gateway is connected (see docs/operations.md).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS --max-time 4 "$ONBOARD_BOT_HEALTH_URL" >/dev/null || exit 1

# `serve` stops cleanly on SIGINT (runs resume from their recorded state at the next start);
# `docker stop` sends this instead of SIGTERM.
STOPSIGNAL SIGINT

# Run with `docker run --init` (or `init: true` in compose): ssh's control masters outlive the
# commands that start them, and an init process reaps them.
ENTRYPOINT ["onboard-bot"]
CMD ["serve"]
