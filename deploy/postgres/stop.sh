#!/usr/bin/env bash
# Stop the private cluster started by deploy/postgres/start.sh. Idempotent.
set -euo pipefail
# shellcheck source=deploy/postgres/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

data="$(pg_dir_for)/data"
if bin="$(find_pg_bin)" && [[ -f "$data/postmaster.pid" ]] \
    && as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  # fast: roll back open transactions and disconnect clients instead of waiting for them.
  as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop
else
  echo "postgres is not running"
fi
