"""The command centre's web console: ``closedloop console serve`` and its accounts.

  closedloop console user add NAME --role viewer|operator|admin [--districts D1,D2]
  closedloop console user list | user disable NAME
  closedloop console serve [--ledger URL] [--host H] [--port P]

Pages: /today (日清日结), /alerts (filter, act on one or many), /rounds (区域核酸, the catch-up
list per grid as CSV or Excel), /timeline/SUBJECT (audited), in Chinese or English.
"""

from __future__ import annotations

import argparse
import difflib
import os
import socket
import sys
from typing import Any, Final

__all__ = ["add_parser", "listen", "run"]

SERVE_HELP: Final = """Serve the console on the ledger (the default one, or --ledger URL).

It binds 127.0.0.1 (this machine only) unless --host says otherwise. Sign in with an account
made by `closedloop console user add`. Actions go where the deployment's one setting says
($CLOSEDLOOP_ACTIONS_VIA, else kafka when $CLOSEDLOOP_KAFKA is set, else the ledger).

Behind TLS (any other machine must reach it over HTTPS, never plain HTTP): keep it on
127.0.0.1 and put a reverse proxy in front that terminates TLS, e.g. Caddy:

    console.example.org {
        reverse_proxy 127.0.0.1:8080
    }

or nginx (in a server block with listen 443 ssl and your certificate):

    location / {
        proxy_pass http://127.0.0.1:8080;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto https;
    }

and run it with --secure-cookies (cookies then carry Secure and the __Host- prefix: the
browser sends them over HTTPS only) and --forwarded-allow-ips 127.0.0.1 (the proxy's
address: sign-in attempts are then limited per real client address, not per proxy). Set
$CLOSEDLOOP_CONSOLE_SECRET (32 characters or more, e.g. `openssl rand -hex 32`) so sessions
survive a restart and several processes share them; without it each start signs its cookies
with a new random secret and everyone signs in again.

examples:
  closedloop console serve                       # http://127.0.0.1:8080/ on ./closedloop.db
  closedloop console serve --ledger postgresql+psycopg://console@db/closedloop --port 8080 \\
      --secure-cookies --forwarded-allow-ips 127.0.0.1
"""

USER_HELP: Final = """Console accounts, kept in the ledger.

The password of `user add` is read from standard input (asked twice on a terminal), never
from an argument (arguments show in the process list and the shell's history); at least 10
characters; stored as a slow salted hash (scrypt), never in clear. An account's name is its
operator id in the audit of actions. A viewer reads; an operator also acts on alerts; an
admin also manages accounts. With --districts the account sees and acts on those districts
only (alerts with no district are for accounts of the whole city). `user disable` ends the
account's sessions at once.

examples:
  closedloop console user add op-017 --role operator --districts pudong,xuhui
  printf '%s\\n' "$PASSWORD" | closedloop console user add lead-1 --role admin
  closedloop console user list
  closedloop console user disable op-017
"""

SECRET_ENV: Final = "CLOSEDLOOP_CONSOLE_SECRET"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from closedloop.streams.app.actions import VIA
    from closedloop.streams.app.caller import ROLES
    from closedloop.streams.ledger.options import add_ledger

    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="console_command", metavar="COMMAND", required=True)
    serve = sub.add_parser("serve", help="serve the console's pages", description=SERVE_HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--host", default="127.0.0.1",
                       help="the address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8080,
                       help="the port (default 8080; 0: any free port, printed)")
    serve.add_argument("--secure-cookies", action="store_true",
                       help="served over HTTPS (behind a TLS proxy): Secure, __Host- cookies")
    serve.add_argument("--forwarded-allow-ips", metavar="IPS",
                       help="trust X-Forwarded-For from these proxy addresses (comma-separated)")
    serve.add_argument("--via", choices=VIA,
                       help="where actions go (default: $CLOSEDLOOP_ACTIONS_VIA, else kafka "
                       "when $CLOSEDLOOP_KAFKA is set, else ledger)")
    serve.add_argument("--policy", metavar="FILE", help="policy file: its time zone")
    add_ledger(serve)
    user = sub.add_parser("user", help="add, list or disable accounts", description=USER_HELP,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    users = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = users.add_parser("add", help="add an account (password on standard input)",
                           description=USER_HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    add.add_argument("name", metavar="NAME", help="the account, e.g. op-017")
    add.add_argument("--role", required=True, choices=ROLES, help="viewer, operator or admin")
    add.add_argument("--districts", metavar="D1,D2",
                     help="only these districts (default: the whole city)")
    add_ledger(add)
    listing = users.add_parser("list", help="list the accounts")
    add_ledger(listing)
    disable = users.add_parser("disable", help="disable an account and end its sessions")
    disable.add_argument("name", metavar="NAME", help="the account to disable")
    add_ledger(disable)


def run(args: argparse.Namespace) -> int:
    if args.console_command == "serve":
        return _serve(args)
    return _user(args)


def _fail(message: str, code: int) -> int:
    print(f"closedloop console: {message}", file=sys.stderr)
    return code


def _open(url: str | None) -> Any:
    from closedloop.streams.ledger import database_url
    from closedloop.streams.ledger.engine import custom_plans
    from closedloop.streams.ledger.errors import LedgerUnavailable, ledger_error
    from closedloop.streams.ledger.migrate import open_existing

    try:
        return custom_plans(open_existing(database_url(url)))
    except Exception as exc:
        message = ledger_error(exc)
        if message is None:
            raise
        raise LedgerUnavailable(message) from exc


def _read_password() -> str | None:
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            return None
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _user(args: argparse.Namespace) -> int:
    from closedloop.streams.console import accounts
    from closedloop.streams.ledger.errors import LedgerUnavailable

    try:
        engine = _open(args.ledger)
    except LedgerUnavailable as exc:
        return _fail(str(exc), 1)
    try:
        if args.user_command == "list":
            with engine.connect() as connection:
                rows = accounts.listing(connection)
            _print_accounts(rows)
            return 0
        if args.user_command == "disable":
            with engine.begin() as connection:
                accounts.disable(connection, args.name)
            print(f"account {args.name} disabled; its sessions are ended")
            return 0
        districts = None if args.districts is None else [
            d.strip() for d in args.districts.split(",") if d.strip()]
        accounts.check_name(args.name)
        if districts is not None:
            unknown = _unknown_district(engine, districts)
            if unknown is not None:
                return _fail(unknown, 2)
        password = _read_password()
        if password is None:
            return _fail("the two passwords differ", 2)
        with engine.begin() as connection:
            accounts.add(connection, args.name, args.role, password, districts)
        scope = "the whole city" if districts is None else ", ".join(sorted(set(districts)))
        print(f"account {args.name} added: {args.role}, {scope}")
        return 0
    except accounts.AccountError as exc:
        return _fail(str(exc), 2)
    finally:
        engine.dispose()


def _unknown_district(engine: Any, districts: list[str]) -> str | None:
    """A line naming a district the ledger has never seen (closest known first), or None.
    A ledger with no district yet accepts any (a deployment sets accounts up before data)."""
    from closedloop.streams.ledger import queries

    with engine.connect() as connection:
        known = set(queries.report_districts(connection)) | set(
            queries.known_values(connection, None, "district"))
    if not known:
        return None
    for district in districts:
        if district not in known:
            close = sorted(known, key=lambda k: -difflib.SequenceMatcher(None, district,
                                                                          k).ratio())
            return (f"no district {district!r} in the ledger; known: {', '.join(close)}")
    return None


def _print_accounts(rows: list[dict[str, Any]]) -> None:
    from closedloop.streams.ledger.formats import display_width, pad

    def when(value: Any) -> str:
        return "-" if value is None else value.isoformat(timespec="seconds")

    table = [["name", "role", "districts", "created", "disabled", "last sign-in"]]
    for row in rows:
        table.append([row["name"], row["role"],
                      "(whole city)" if row["districts"] is None
                      else ",".join(row["districts"]),
                      when(row["created_at"]), when(row["disabled_at"]),
                      when(row["last_login"])])
    widths = [max(display_width(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        print("  ".join(pad(cell, width) for cell, width in zip(line, widths, strict=True))
              .rstrip())
    print(f"{len(rows)} account{'s' if len(rows) != 1 else ''}")


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: any free port) for uvicorn.

    Made with the TCP protocol named, as asyncio's own sockets are: asyncio turns Nagle's
    algorithm off only on sockets whose protocol says TCP, and with it on, every answer
    written in two parts (headers, then body) waits ~40 ms for the client's delayed ACK.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
    except OSError:
        listener.close()
        raise
    return listener


def _serve(args: argparse.Namespace) -> int:
    import secrets

    import uvicorn

    from closedloop.schemas.policy import PolicyError, load_policy
    from closedloop.streams.app.actions import default_via
    from closedloop.streams.console.web import Settings, create_app
    from closedloop.streams.ledger.errors import LedgerUnavailable

    try:
        policy = load_policy(args.policy)
        via = args.via or default_via()
    except (PolicyError, ValueError) as exc:
        return _fail(str(exc), 2)
    secret_text = os.environ.get(SECRET_ENV, "")
    if secret_text and len(secret_text) < 32:
        return _fail(f"{SECRET_ENV} must hold at least 32 characters", 2)
    try:
        engine = _open(args.ledger)
    except LedgerUnavailable as exc:
        return _fail(str(exc), 1)
    try:
        listener = listen(args.host, args.port)
    except OSError as exc:
        engine.dispose()
        return _fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", 1)
    secret = secret_text.encode() if secret_text else secrets.token_bytes(32)
    app = create_app(Settings(engine=engine, policy=policy, secret=secret,
                              secure_cookies=args.secure_cookies, via=via))
    port = listener.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    shown = engine.url.render_as_string(hide_password=True)
    print(f"closedloop console: http://{host}:{port}/ on the ledger {shown}; actions go to "
          f"the {via}" + ("" if secret_text else
                          f"; sessions end when it stops (set {SECRET_ENV} to keep them)"),
          flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False,
                            proxy_headers=args.forwarded_allow_ips is not None,
                            forwarded_allow_ips=args.forwarded_allow_ips or "127.0.0.1")
    try:
        # no access log: request paths name subjects, and a mistyped resident ID must not
        # reach a log line
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        engine.dispose()
    return 0
