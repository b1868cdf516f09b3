# shellcheck shell=bash disable=SC2034  # (variables are used by the scripts that source it)
# Shared by deploy/postgres/start.sh and stop.sh (sourced, not run): where the private cluster
# lives, which binaries run it, and as whom.
#
# Env: CLOSEDLOOP_CACHE (default <repo>/.cache), CLOSEDLOOP_PG_PORT (55432),
#      CLOSEDLOOP_PG_DB (closedloop_test), CLOSEDLOOP_PG_DIR (where the cluster lives; see below).

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${CLOSEDLOOP_CACHE:-$repo/.cache}"
pg_port="${CLOSEDLOOP_PG_PORT:-55432}"
pg_db="${CLOSEDLOOP_PG_DB:-closedloop_test}"
pg_url="postgresql+psycopg://postgres@127.0.0.1:$pg_port/$pg_db"

# PostgreSQL refuses to run as root, so as root every server-side command runs as the
# `postgres` system user; anyone else runs it as themselves.
if [[ $EUID -eq 0 ]]; then pg_user=postgres; else pg_user="$(id -un)"; fi

as_pg() {
  if [[ $EUID -eq 0 ]]; then
    # cd /: the postgres user may not be allowed into the caller's working directory.
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# The cluster goes under the cache, unless the postgres user cannot reach it there (say, a
# clone under /root, which is mode 700): then under /var/tmp, in a folder named after the cache
# path so two clones never share one. Both scripts make the same choice.
pg_dir_for() {
  if [[ -n "${CLOSEDLOOP_PG_DIR:-}" ]]; then
    echo "$CLOSEDLOOP_PG_DIR"
    return
  fi
  # Root creates the missing folders, so what matters is whether the postgres user can pass
  # through the nearest folder that exists already (and so through all above it).
  local near="$cache"
  while [[ ! -e "$near" ]]; do near="$(dirname "$near")"; done
  if [[ $EUID -ne 0 ]] || ! id postgres >/dev/null 2>&1 || as_pg test -x "$near" 2>/dev/null; then
    echo "$cache/postgres"
  else
    echo "/var/tmp/closedloop-postgres-$(printf %s "$cache" | md5sum | cut -c1-12)"
  fi
}

# Debian keeps the server binaries off PATH, in /usr/lib/postgresql/<major>/bin.
find_pg_bin() {
  local dir
  # Newest major first: sort numerically on the version folder (a glob would put 9 after 15).
  for dir in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5 -n -r); do
    if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then echo "$dir"; return 0; fi
  done
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(command -v pg_ctl)"
    return 0
  fi
  return 1
}
