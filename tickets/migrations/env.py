from alembic import context
from sqlalchemy import Connection, engine_from_config, pool, text

from classifiers.assist_store import AssistBase
from consoles.models import ConsoleBase
from dispatch_rules.models import RulesBase
from tickets.models import Base

config = context.config
target_metadata = [Base.metadata, RulesBase.metadata, AssistBase.metadata, ConsoleBase.metadata]
# any constant shared by every host: PostgreSQL advisory locks are named by a number
MIGRATION_LOCK_ID = 0x686F746C696E65  # "hotline"


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        connectable = engine_from_config(config.get_section(config.config_ini_section, {}),
                                         prefix="sqlalchemy.", poolclass=pool.NullPool)
        with connectable.connect() as connection:
            _run(connection)
    else:
        _run(connectable)


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        _wait_for_other_migrations(connection)
        context.run_migrations()


def _wait_for_other_migrations(connection: Connection) -> None:
    """Hosts upgrading one PostgreSQL database at once queue here; each reads the schema version only once the
    previous one has committed, so the later ones find it current. The lock ends with the transaction."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
