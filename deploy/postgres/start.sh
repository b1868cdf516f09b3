#!/usr/bin/env bash
# Start a private PostgreSQL cluster on 127.0.0.1:${CLOSEDLOOP_PG_PORT:-55432} for development
# and CI, with trust auth on localhost and the database closedloop_test, then print its
# SQLAlchemy URL. A separate cluster on its own port never clashes with a system PostgreSQL.
# Installs Debian's postgresql when the server binaries are missing. Idempotent.
set -euo pipefail
# shellcheck source=deploy/postgres/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if ! bin="$(find_pg_bin)"; then
  [[ $EUID -eq 0 ]] || { echo "start.sh: PostgreSQL is not installed; run as root or: apt-get install postgresql" >&2; exit 1; }
  echo "PostgreSQL server binaries not found; installing Debian's postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q postgresql
  bin="$(find_pg_bin)" || { echo "start.sh: postgresql installed but initdb/pg_ctl not found" >&2; exit 1; }
fi

if [[ $EUID -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
  # Binaries without Debian's package (which creates it): make the system user ourselves.
  useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

root="$(pg_dir_for)"
data="$root/data"
sockets="$root/run"
log="$root/postgres.log"
mkdir -p "$root"
[[ $EUID -eq 0 ]] && chown "$pg_user": "$root"
as_pg mkdir -p "$data" "$sockets"
chmod 700 "$data"

if [[ ! -f "$data/PG_VERSION" ]]; then
  echo "initialising a cluster in $data"
  # trust: only 127.0.0.1/::1 and the private socket can reach this throwaway cluster.
  as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C >"$root/initdb.log" 2>&1 \
    || { cat "$root/initdb.log" >&2; echo "start.sh: initdb failed" >&2; exit 1; }
fi

if as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  echo "postgres already running in $data"
else
  if (exec 3<>"/dev/tcp/127.0.0.1/$pg_port") 2>/dev/null; then
    echo "start.sh: port $pg_port on 127.0.0.1 is taken by another process; set CLOSEDLOOP_PG_PORT" >&2
    exit 1
  fi
  echo "starting postgres on 127.0.0.1:$pg_port (log $log)"
  # Settings on the command line so a changed port applies without editing postgresql.conf.
  # fsync and synchronous_commit off: this cluster holds test data only, and speed matters more.
  opts="-c listen_addresses=127.0.0.1 -p $pg_port -c unix_socket_directories=$sockets"
  opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  if ! as_pg "$bin/pg_ctl" -D "$data" -l "$log" -o "$opts" -w -t 60 start >/dev/null; then
    echo "start.sh: postgres did not start; last lines of $log:" >&2
    tail -n 30 "$log" >&2 || true
    exit 1
  fi
fi

psql=("$bin/psql" -X -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -v ON_ERROR_STOP=1)
if [[ "$(as_pg "${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = '$pg_db'")" != 1 ]]; then
  as_pg "${psql[@]}" -c "CREATE DATABASE \"$pg_db\""
  echo "created database $pg_db"
fi
echo "postgres ready: $pg_url"
