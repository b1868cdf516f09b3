"""The command centre's web console (指挥部): server-rendered pages over the SQL ledger.

It calls the same application layer as the command line (``closedloop.streams.app``) with
the signed-in account as the caller, so the two never disagree about what an operator may see
or do; nothing here queries alerts or decides an action by itself.

- ``command``: ``closedloop console serve`` and ``console user add|list|disable``.
- ``web``: the pages (a Starlette application).
- ``accounts``: accounts, signing in (rate-limited) and sessions, as the application layer's
  ``Caller``; ``security``: password hashes, signed cookies, CSRF tokens (pure functions).
- ``i18n``: every text in Chinese and English; ``charts``: SVG drawn on the server.
- ``templates/`` and ``static/``: Jinja2 templates and the one style sheet, served from the
  package: no asset from a CDN, no web font, no script.

Why this stack: **Starlette** is a small ASGI toolkit (routing, forms, cookies, static files)
that runs a handler written as a plain function in its thread pool, so the application
layer's synchronous SQLAlchemy code is called as it is, without blocking the server;
**Jinja2** escapes every value it renders by default, so a note holding ``<script>`` shows as
text; **uvicorn** serves it (one process, no access log: paths name subjects);
**python-multipart** parses forms, which work without JavaScript. aiohttp (already installed
by Faust) would have needed every ledger call pushed to an executor by hand and gives no
template escaping of its own.
"""
