"""The Faust app of `closedloop worker`: the process, its web endpoints and the consume loop.

Faust runs the process (start-up, logging, signals, the ``/health``, ``/ready`` and
``/metrics`` pages) and starts :class:`~closedloop.streams.kafka.loop.WorkerLoop` as one of
its services. The loop, not Faust's agents, consumes: Faust's per-record stream pipeline
and its tables cost more CPU per record than the worker's whole budget (docs/PERFORMANCE.md,
``streams/kafka/FAUST_STUDY.md``), so the app boots without Faust's own Kafka
consumer and producer, and the loop reads, applies and writes in batches with aiokafka:

- the tube stage: ``sampling``, ``lab``, ``tube-ticks`` and ``action`` (key tube_id; an action
  keyed by a tube handles one of the tube's alerts), and the shared ``area`` and ``round``;
- the person stage: ``travel``, ``followup``, ``cohort``, ``action``, ``population``,
  ``checkpoint``, ``clinic`` and ``person-tests`` (the tube join's forwards, its clock marks,
  the shared facts and the person ticks; key person_id);
- the supervision stage: ``inspection``, ``unit-ticks`` and ``action`` (key unit_id);
- the data-entry stage: ``entry-parts`` (what the tube and person stages' record intake sends
  it, key ``<topic>:<source>`` or lab_id, and their clock marks) and ``action``;
- the report stage: ``report-parts`` (contributions and clock marks, key district; the person
  partitions' shares of testing rounds' reports, key round_id), to ``daily-report`` and
  ``round-report``.

``--clock wall``: every second the wall clock moves each owned partition of both keyed
stages to now - allowed_lateness, so deadlines fire within about a second while inputs are
idle; a worker that starts after downtime fires each lapse it missed once, marked
``details.catch_up = true``. ``--clock event``: only event time and the ticks of
``closedloop clock --until`` move it.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

from closedloop.schemas.policy import Policy
from closedloop.streams.engine.clock import wall_now
from closedloop.streams.kafka.loop import WorkerLoop
from closedloop.streams.kafka.metrics import WorkerMetrics
from closedloop.streams.kafka.quiet import quieten
from closedloop.streams.kafka.reachability import watch
from closedloop.streams.kafka.settings import KafkaSettings

__all__ = ["build_app", "serve"]


def build_app(settings: KafkaSettings, policy: Policy, *, clock: str, app_id: str,
              data_dir: str, web_port: int) -> Any:
    """The Faust app with its web pages and the consume loop; nothing starts here."""
    import os

    import faust
    from faust.app.base import BootStrategy
    from mode import Service
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    class Boot(BootStrategy):
        enable_kafka = False  # the loop has its own consumer and producer

    app = faust.App(
        app_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap.split(",")],
        datadir=data_dir,
        web_port=web_port,
        web_bind="127.0.0.1" if os.environ.get("CLOSEDLOOP_WEB_BIND") is None
        else os.environ["CLOSEDLOOP_WEB_BIND"],
    )
    app.boot_strategy = Boot(app)
    telemetry = WorkerMetrics(policy)  # every closedloop_* metric (streams/kafka/metrics.py)
    loop = WorkerLoop(settings, policy, clock=clock, app_id=app_id, data_dir=data_dir,
                      telemetry=telemetry)

    @app.service
    class Consume(Service):
        """Starts the loop with the app, and stops it (its consumer leaves the group)."""

        async def on_start(self) -> None:
            quieten()  # the process's logging is set up by now: limit what reaches it
            await loop.start()

        @Service.task
        async def _consume(self) -> None:
            try:
                await loop.run(lambda: self.should_stop)
            except Exception:
                if self.should_stop:  # a stop while the cluster was away: nothing to undo
                    return
                # A send or commit failed: stop rather than go on without those records; the
                # partitions' next owner (this worker, restarted) reads them again.
                logging.getLogger("closedloop.worker").exception(
                    "closedloop: the consume loop failed; stopping")
                os._exit(1)

        @Service.task
        async def _probe(self) -> None:
            async def metadata() -> object:  # any broker's answer will do
                return None if loop.consumer is None else await loop.consumer.topics()

            await watch(metadata, loop.reach, lambda: self.should_stop)

        async def on_stop(self) -> None:
            await loop.stop()

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "alive"})

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        reason = loop.reach.reason() or loop.problem or (
            None if loop.ready else "partitions are being assigned or restored")
        if reason is None:
            return web.json({"ready": True})
        return web.json({"ready": False, "reason": reason}, status=503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        telemetry.refresh(wall_now(), loop.clocks(), await loop.lags(),
                          loop.reach.unreachable_seconds())
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    app.closedloop_loop = loop  # for tests and introspection
    return app


def serve(app: Any, loglevel: str) -> None:
    """Run ``app`` in this process until SIGTERM (a clean stop commits what was handled)."""
    from faust.worker import Worker

    worker = Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.spinner = None  # Faust's spinner sets the root logger to DEBUG (slow)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop_and_shutdown())
    worker.execute_from_commandline()
