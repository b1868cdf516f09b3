"""Alembic's entry point for the ledger: runs migrations on the engine the caller passes.

``closedloop db`` (``closedloop.streams.ledger.migrate``) puts the engine in
``config.attributes["engine"]``, so the URL comes from ``--url`` or the environment and is
never written to a file.
"""

from __future__ import annotations

from alembic import context

from closedloop.streams.ledger.models import Base


def run_migrations() -> None:
    engine = context.config.attributes.get("engine")
    if engine is None:
        raise RuntimeError("run the ledger's migrations with `closedloop db upgrade --ledger URL`")
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            # SQLite alters a table by copying it; batch mode lets later scripts do that.
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        context.run_migrations()


run_migrations()
