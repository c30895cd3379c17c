#!/usr/bin/env bash
# Local PostgreSQL, Redis and Apache Kafka on loopback, without Docker.
#
#   scripts/services.sh up [postgres|redis|kafka ...]    install what is missing, start what
#                                                        is stopped (idempotent; all by default)
#   scripts/services.sh down [postgres|redis|kafka ...]  stop what `up` started
#   scripts/services.sh status   one line per service
#   scripts/services.sh tools    install docker-compose (validates docker-compose.yml),
#                                chromium + chromium-driver (the browser tests), promtool
#                                (Debian's prometheus: the metrics tests) and the AsyncAPI
#                                parser (`npm` below) if missing
#   scripts/services.sh npm      only the AsyncAPI parser: npm's @asyncapi/parser, pinned, in
#                                .services/npm (Debian's nodejs and npm first if missing)
#
# A service named by its environment variable (DATABASE_URL, REDIS_URL,
# KAFKA_BOOTSTRAP_SERVERS) is used as it is: checked, never started here.
# Data and logs live in .services/ (gitignored), or in $SHOP_SERVICES_DIR; as root, when the
# `postgres` user cannot enter that folder (a clone under /root or a mktemp -d directory),
# PostgreSQL's data and server log live in /var/lib/postgresql/shop-dev-<checksum>[.log].
# Missing packages are installed with apt-get (as root) unless SHOP_NO_INSTALL=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Absolute: commands run as `postgres` start in /, not here.
STATE=$(realpath -m "${SHOP_SERVICES_DIR:-$ROOT/.services}")
LOGS=$STATE/logs
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}

PG_PORT=${SHOP_PG_PORT:-55432}
REDIS_PORT=${SHOP_REDIS_PORT:-56379}
KAFKA_PORT=${SHOP_KAFKA_PORT:-59092}
KAFKA_CONTROLLER_PORT=${SHOP_KAFKA_CONTROLLER_PORT:-59093}
KAFKA_VERSION=4.4.0  # keep in step with scripts/kafka/pom.xml
KAFKA_HEAP=${SHOP_KAFKA_HEAP:-512m}
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java

say() { printf 'services: %s\n' "$*"; }
fail() { printf 'services: error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

apt_updated=no
apt_install() {
  # Installs Debian packages when this user can; otherwise explains what to install.
  local why=$1; shift
  [ "${SHOP_NO_INSTALL:-0}" = 1 ] && fail "$why: install $* (e.g. apt-get install -y $*)."
  command -v apt-get >/dev/null \
    || fail "$why, and apt-get is not available: install $* with your package manager."
  is_root || fail "$why: run 'sudo apt-get install -y $*' (or run this script as root)."
  say "$why: installing $* with apt-get"
  if [ "$apt_updated" = no ]; then
    apt-get update -qq >"$LOGS/apt.log" 2>&1 || fail "apt-get update failed; see $LOGS/apt.log"
    apt_updated=yes
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
    >>"$LOGS/apt.log" 2>&1 || fail "apt-get install $* failed; see $LOGS/apt.log"
}

# ---------------------------------------------------------------- npm tools

# The official AsyncAPI parser validates docs/asyncapi.yaml (backbone/tests/test_asyncapi.py).
# The parser, not @asyncapi/cli: 54 MB installed against the CLI's 441 MB, the same checks.
ASYNCAPI_PARSER_VERSION=3.6.6
NPM_DIR=$STATE/npm

npm_tools_install() {
  command -v node >/dev/null && command -v npm >/dev/null \
    || apt_install "node or npm not found (the AsyncAPI test runs the official parser)" nodejs npm
  local installed=$NPM_DIR/node_modules/@asyncapi/parser/package.json
  if [ -f "$installed" ] && grep -q "\"version\": \"$ASYNCAPI_PARSER_VERSION\"" "$installed"; then
    say "@asyncapi/parser: installed ($ASYNCAPI_PARSER_VERSION)"
    return
  fi
  say "@asyncapi/parser $ASYNCAPI_PARSER_VERSION: installing into $NPM_DIR"
  mkdir -p "$NPM_DIR"
  npm install --prefix "$NPM_DIR" --no-audit --no-fund --no-save --silent \
    "@asyncapi/parser@$ASYNCAPI_PARSER_VERSION" >"$LOGS/npm.log" 2>&1 \
    || fail "npm install @asyncapi/parser failed; see $LOGS/npm.log"
}

# ---------------------------------------------------------------- PostgreSQL

pg_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

# From /: `postgres` may not be allowed to enter the directory this script runs in.
as_pg() { if is_root; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }

pg_locations() {
  # Sets PG_DATA and PG_LOG. The server refuses to run as root, so it runs as the `postgres`
  # user, which must reach its data folder and open its log itself (pg_ctl -l); a checkout
  # below a directory only root may enter falls back to that user's home.
  PG_DATA=$STATE/postgres
  PG_LOG=$LOGS/postgres.log
  if is_root && ! as_pg test -x "$LOGS" 2>/dev/null; then
    local base
    base=/var/lib/postgresql/shop-dev-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)
    PG_DATA=$base
    PG_LOG=$base.log
  fi
}

pg_ready() { "$1/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }

pg_sql() { "$1/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qtAX -c "$2"; }

postgres_init() {
  local bin=$1
  say "PostgreSQL: creating a cluster in $PG_DATA"
  mkdir -p "$PG_DATA"
  is_root && chown postgres: "$PG_DATA"
  as_pg "$bin/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=trust >"$LOGS/initdb.log" 2>&1 \
    || fail "initdb failed; see $LOGS/initdb.log"
  cat >>"$PG_DATA/postgresql.conf" <<EOF

# shop development cluster (scripts/services.sh)
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '/tmp'
wal_level = logical
# The relay publishes in commit order, which it reads from commit timestamps.
track_commit_timestamp = on
max_connections = 300
shared_buffers = 256MB
EOF
}

pg_start_errors() {
  # What this start wrote to the server log that says why it failed, on one line: the cause
  # ("could not bind ...: Address already in use") comes lines before the final FATAL.
  tail -c +"$(($1 + 1))" "$PG_LOG" | grep -E 'FATAL|PANIC|ERROR|could not|HINT' \
    | sed -E 's/^[0-9-]+ [0-9:.]+ [A-Z]+ \[[0-9]+\] //' | tail -5 | tr '\n' ' '
}

postgres_start() {
  local bin=$1
  pg_locations
  [ -s "$PG_DATA/PG_VERSION" ] || postgres_init "$bin"
  # Recorded before the start, so `down` finds a server even if this run fails later on.
  echo "$PG_DATA" >"$STATE/postgres.datadir"
  touch "$PG_LOG"
  local logged
  logged=$(stat -c %s "$PG_LOG")
  if is_root; then
    chown postgres: "$PG_LOG"
    # The usual place still shows the log when it had to live elsewhere.
    [ "$PG_LOG" = "$LOGS/postgres.log" ] || ln -sfn "$PG_LOG" "$LOGS/postgres.log"
  fi
  # pg_ctl's own output names causes the server log cannot hold (a log it could not open).
  as_pg "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >"$LOGS/pg_ctl.log" 2>&1 \
    || fail "PostgreSQL did not start: $(pg_start_errors "$logged")(pg_ctl: $(tr -s '\n' ' ' <"$LOGS/pg_ctl.log"); server log: $PG_LOG)"
  say "PostgreSQL: started on 127.0.0.1:$PG_PORT (data in $PG_DATA)"
}

postgres_up() {
  if [ -n "${DATABASE_URL:-}" ]; then
    command -v pg_isready >/dev/null || apt_install "pg_isready is missing" postgresql-client
    pg_isready -q -d "$DATABASE_URL" \
      || fail "PostgreSQL at DATABASE_URL does not answer: start it, or unset DATABASE_URL to use a local one."
    say "PostgreSQL: using DATABASE_URL"
    return
  fi
  local bin
  bin=$(pg_bindir) || true
  if [ -z "$bin" ]; then
    apt_install "PostgreSQL server not found" postgresql
    bin=$(pg_bindir) || fail "PostgreSQL installed but initdb not found under /usr/lib/postgresql"
  fi
  if pg_ready "$bin"; then
    say "PostgreSQL: already running on 127.0.0.1:$PG_PORT"
  else
    postgres_start "$bin"
  fi
  [ "$(pg_sql "$bin" 'SHOW wal_level')" = logical ] \
    || fail "PostgreSQL on port $PG_PORT runs without wal_level=logical"
  [ "$(pg_sql "$bin" 'SHOW track_commit_timestamp')" = on ] \
    || fail "PostgreSQL on port $PG_PORT runs without track_commit_timestamp=on (the relay needs it)"
  [ "$(pg_sql "$bin" "SELECT 1 FROM pg_roles WHERE rolname = 'shop'")" = 1 ] \
    || pg_sql "$bin" "CREATE ROLE shop LOGIN PASSWORD 'shop' CREATEDB"
  [ "$(pg_sql "$bin" "SELECT 1 FROM pg_database WHERE datname = 'shop'")" = 1 ] \
    || pg_sql "$bin" "CREATE DATABASE shop OWNER shop"
}

postgres_down() {
  local bin data
  bin=$(pg_bindir) || return 0
  [ -f "$STATE/postgres.datadir" ] || return 0
  data=$(cat "$STATE/postgres.datadir")
  if pg_ready "$bin"; then
    as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop >"$LOGS/pg_ctl.log" 2>&1 \
      || fail "PostgreSQL did not stop: $(tr -s '\n' ' ' <"$LOGS/pg_ctl.log")"
    say "PostgreSQL: stopped"
  fi
}

# ---------------------------------------------------------------- Redis

redis_ping() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

redis_up() {
  if [ -n "${REDIS_URL:-}" ]; then
    command -v redis-cli >/dev/null || apt_install "redis-cli is missing" redis-tools
    redis-cli -u "$REDIS_URL" ping 2>/dev/null | grep -q PONG \
      || fail "Redis at REDIS_URL does not answer: start it, or unset REDIS_URL to use a local one."
    say "Redis: using REDIS_URL"
    return
  fi
  command -v redis-server >/dev/null || apt_install "Redis server not found" redis-server
  if redis_ping; then
    say "Redis: already running on 127.0.0.1:$REDIS_PORT"
    return
  fi
  mkdir -p "$STATE/redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$STATE/redis" \
    --pidfile "$STATE/redis/redis.pid" --logfile "$LOGS/redis.log" --save "" --appendonly no \
    || fail "redis-server did not start; see $LOGS/redis.log"
  for _ in $(seq 50); do redis_ping && break; sleep 0.1; done
  redis_ping || fail "Redis did not answer on 127.0.0.1:$REDIS_PORT; see $LOGS/redis.log"
  say "Redis: started on 127.0.0.1:$REDIS_PORT"
}

redis_down() {
  command -v redis-cli >/dev/null || return 0
  redis_ping && redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1
  say "Redis: stopped"
}

# ---------------------------------------------------------------- Apache Kafka

kafka_ready() {
  # A metadata request that succeeds, not merely an open port.
  "$PYTHON" "$ROOT/scripts/kafka_ready.py" "$1" 2>/dev/null
}

java_ok() {
  command -v "$JAVA" >/dev/null || return 1
  local major
  major=$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/.*java.specification.version = //p')
  [ "${major%%.*}" -ge 17 ] 2>/dev/null
}

kafka_fetch() {
  local libs=$1
  [ -f "$libs/kafka_2.13-$KAFKA_VERSION.jar" ] && return
  command -v mvn >/dev/null || apt_install "Maven not found (needed to fetch Apache Kafka)" maven
  say "Kafka: fetching Apache Kafka $KAFKA_VERSION from Maven Central"
  rm -rf "$libs.partial"
  mvn -q -B -f "$ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs.partial" >"$LOGS/maven.log" 2>&1 \
    || fail "could not fetch Apache Kafka $KAFKA_VERSION with Maven; see $LOGS/maven.log"
  mv "$libs.partial" "$libs"
}

# The JDK and the Kafka jars: for the local broker, and for the tests' disposable brokers (also
# when the shop's Kafka runs elsewhere).
kafka_install() {
  java_ok || apt_install "Java 17 or newer not found (Apache Kafka runs on the JDK)" openjdk-17-jre-headless
  java_ok || fail "Java 17 or newer is required: install openjdk-17-jre-headless or set JAVA_HOME/PATH."
  mkdir -p "$1"
  kafka_fetch "$1/libs-$KAFKA_VERSION"
}

kafka_configure() {
  local dir=$1
  cat >"$dir/server.properties" <<EOF
# Single-node KRaft broker for development and tests (scripts/services.sh).
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  cat >"$dir/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $LOGS/kafka.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache
logger.apache.level = WARN
EOF
}

kafka_jvm_args() {
  local dir=$1
  JVM_ARGS=(-Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -Djava.awt.headless=true -Dkafka.logs.dir="$LOGS"
    -Dlog4j2.configurationFile="$dir/log4j2.properties"
    -cp "$dir/libs-$KAFKA_VERSION/*")
}

kafka_up() {
  if [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    kafka_ready "$KAFKA_BOOTSTRAP_SERVERS" \
      || fail "Kafka at KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS does not answer: start it, or unset the variable to use a local one."
    say "Kafka: using KAFKA_BOOTSTRAP_SERVERS"
    return
  fi
  local dir=$STATE/kafka bootstrap=127.0.0.1:$KAFKA_PORT
  if kafka_ready "$bootstrap"; then
    say "Kafka: already running on $bootstrap"
    return
  fi
  kafka_install "$dir"
  kafka_configure "$dir"
  kafka_jvm_args "$dir"
  if [ ! -f "$dir/data/meta.properties" ]; then
    say "Kafka: formatting storage in $dir/data"
    local cluster_id
    cluster_id=$("$JAVA" "${JVM_ARGS[@]}" kafka.tools.StorageTool random-uuid 2>>"$LOGS/kafka.out")
    "$JAVA" "${JVM_ARGS[@]}" kafka.tools.StorageTool format --standalone -t "$cluster_id" \
      -c "$dir/server.properties" >>"$LOGS/kafka.out" 2>&1 \
      || fail "Kafka storage format failed; see $LOGS/kafka.out"
  fi
  local attempt
  for attempt in 1 2 3; do
    kafka_start "$dir" "$bootstrap" && return
    # The broker's ports lie in the kernel's ephemeral range, so a client socket of another
    # program can hold one for a moment; that is worth another try, a real conflict is not.
    grep -q "Address already in use" <(kafka_log_since_start) && ! port_listening "$KAFKA_PORT" \
      && ! port_listening "$KAFKA_CONTROLLER_PORT" || break
    say "Kafka: a port was taken for a moment (attempt $attempt of 3); starting again"
    sleep 1
  done
  fail "Kafka exited during start-up; last lines of $LOGS/kafka.out: $(tail -3 "$LOGS/kafka.out" | tr '\n' ' ')"
}

# True when something listens on 127.0.0.1:$1, found in /proc without opening a connection: a probe
# that connects to a port nobody listens on yet may be given that very port as its own (a TCP
# self-connect) and hold it, so the broker's bind would fail.
port_listening() {
  local hex
  hex=$(printf ':%04X' "$1")
  awk -v port="$hex" '$2 ~ port"$" && $4 == "0A" { found = 1 } END { exit !found }' /proc/net/tcp /proc/net/tcp6
}

kafka_log_since_start() {
  tail -n +"$KAFKA_LOG_START" "$LOGS/kafka.log" 2>/dev/null
}

# Start the broker once; 0 when it answers, 1 when it exited (the caller decides), fail on timeout.
kafka_start() {
  local dir=$1 bootstrap=$2
  KAFKA_LOG_START=$(( $(wc -l <"$LOGS/kafka.log" 2>/dev/null || echo 0) + 1 ))
  # setsid: the broker outlives the shell (and the Ctrl-C) that started it.
  setsid nohup "$JAVA" "${JVM_ARGS[@]}" kafka.Kafka "$dir/server.properties" \
    >>"$LOGS/kafka.out" 2>&1 </dev/null &
  echo $! >"$dir/kafka.pid"
  for _ in $(seq 120); do
    if port_listening "$KAFKA_PORT" && kafka_ready "$bootstrap"; then
      say "Kafka: started on $bootstrap"
      return 0
    fi
    kill -0 "$(cat "$dir/kafka.pid")" 2>/dev/null || return 1
    sleep 0.5
  done
  fail "Kafka did not answer on $bootstrap within 60 s; see $LOGS/kafka.log"
}

kafka_down() {
  local pidfile=$STATE/kafka/kafka.pid pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    say "Kafka: stopped"
  fi
  rm -f "$pidfile"
}

# ---------------------------------------------------------------- main

status_line() { if $2; then say "$1: running"; else say "$1: stopped"; fi; }

main() {
  mkdir -p "$LOGS"
  local command=${1:-up}
  shift || true
  local names=("$@")
  [ ${#names[@]} -gt 0 ] || names=(postgres redis kafka)
  case "$command" in
    up) for name in "${names[@]}"; do "${name}_up"; done ;;
    down) for (( i=${#names[@]}-1; i>=0; i-- )); do "${names[i]}_down"; done ;;
    status)
      local bin; bin=$(pg_bindir) || true
      status_line PostgreSQL "pg_ready $bin"
      status_line Redis redis_ping
      status_line Kafka "kafka_ready 127.0.0.1:$KAFKA_PORT"
      ;;
    tools)
      if command -v docker-compose >/dev/null; then
        say "docker-compose: installed ($(docker-compose version --short 2>/dev/null || echo 'version unknown'))"
      else
        apt_install "docker-compose not found (the tests validate docker-compose.yml with it)" docker-compose
      fi
      # Debian's build and its matching driver: the browser tests cannot download one.
      if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
        say "chromium: installed ($(chromium --version 2>/dev/null || echo 'version unknown'))"
      else
        apt_install "chromium or chromedriver not found (the browser tests drive them)" chromium chromium-driver
      fi
      # Prometheus' linter: orders/tests/test_metrics.py runs `promtool check metrics` on each endpoint.
      if command -v promtool >/dev/null; then
        say "promtool: installed ($(promtool --version 2>/dev/null | head -n 1 || echo 'version unknown'))"
      else
        apt_install "promtool not found (the metrics tests check each endpoint with it)" prometheus
      fi
      npm_tools_install
      kafka_install "$STATE/kafka"
      ;;
    npm) npm_tools_install ;;
    -h|--help|help) sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0" ;;
    *) fail "unknown command '$command' (use up, down, status, tools or npm)" ;;
  esac
}

main "$@"
