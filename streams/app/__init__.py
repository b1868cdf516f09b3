"""The application layer: what an operator may see and do, for every front end.

The command line and the web console both call these modules, so that no rule of what an
operator may see or do is written twice. Every query and every action takes a
:class:`~closedloop.streams.app.caller.Caller` (who is asking: an operator id, a role and
optionally a set of districts) and a SQLAlchemy ``Connection`` (or, for actions, an
``Engine``) on the ledger; the caller's districts are enforced in the SQL itself, so an
alert of another district is "not found", exactly like an unknown id.

- ``caller``: who is asking (:class:`Caller`, :func:`Caller.command_line`).
- ``alerts``: listing alerts (filters, sorting, pages, counts) and the known values of each
  filter (:func:`check_filters` refuses a value the ledger has never seen, closest first).
- ``actions``: ack, resolve and assign (:func:`act`), and the one setting of where actions go
  (:func:`default_via`: the ledger, or Kafka's action topic).
- ``catchup``: a testing round's catch-up list (查漏补测), per grid.
- ``reports``: the daily closure (日清日结) and testing rounds' reports: latest, list, totals.
- ``timeline``: everything the ledger knows about one subject, in time order.
- ``replay``: replay's run loop (lines through the engine, outputs as they flush), with a
  seam for events from elsewhere (the ledger's actions); ``produce``: replay lines onto
  Kafka; ``clock``: the ticks of ``clock --until``. The command line, the benchmarks and the
  ledger's commands call them, so nothing but the command line imports ``streams/cli/``.

Rules are pure functions; SQL lives in ``closedloop.streams.ledger``; the modules here do
no I/O of their own beyond the connection they are given (and, for ``--via kafka``, the
broker).
"""
