"""Publishing, rollback and hot reload: the router follows the active version without a restart."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import inspect

from dispatch_rules.bundle import RuleBundle
from dispatch_rules.compiler import RulesValidationError
from dispatch_rules.models import RuleVersion
from dispatch_rules.router import DecisionTableRouter, PublishedRules
from dispatch_rules.versions import DEFAULT_AUTHOR, RuleStore, RuleStoreError
from tickets.migrate import alembic_config

from .conftest import call, edit_table, set_output


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def to_city_management(shipped: RuleBundle) -> RuleBundle:
    """A proposed change: 城乡建设 by default to 城管 instead of 住建."""
    return edit_table(shipped, "department.json", lambda c: set_output(c, "hl.cx.default", "role", "城管"))


def test_the_shipped_rules_become_version_1_once(store: RuleStore, shipped: RuleBundle) -> None:
    assert store.active_version_id() is None
    first = store.ensure_default()
    again = store.ensure_default()
    assert first.id == again.id == 1 and first.author == DEFAULT_AUTHOR and first.active
    assert first.content_hash == shipped.content_hash and first.label == f"v1-{shipped.content_hash[:8]}"
    assert len(store.versions()) == 1


def test_publish_records_author_time_note_and_hash(store: RuleStore, shipped: RuleBundle) -> None:
    store.ensure_default()
    proposed = to_city_management(shipped)
    before = datetime.now(UTC)
    info = store.publish(proposed, author="analyst-li", note="城乡建设 default to 城管")
    assert info.id == 2 and info.active and store.active_version_id() == 2
    assert (info.author, info.note, info.content_hash) == ("analyst-li", "城乡建设 default to 城管",
                                                          proposed.content_hash)
    assert info.created_at >= before.replace(microsecond=0)
    assert store.bundle(2).files == proposed.files
    same = store.publish(proposed, author="analyst-li", note="again")
    assert same.id == 2 and len(store.versions()) == 2  # identical to the active one: nothing new


def test_a_broken_table_is_not_published_and_the_active_version_stays(store: RuleStore,
                                                                      shipped: RuleBundle) -> None:
    store.ensure_default()
    broken = edit_table(shipped, "department.json", lambda c: set_output(c, "hl.cx.default", "role", "拆迁办"))
    with pytest.raises(RulesValidationError) as raised:
        store.publish(broken, author="analyst-li")
    assert raised.value.errors[0].table == "department.json" and raised.value.errors[0].field == "role"
    assert store.active_version_id() == 1 and len(store.versions()) == 1


def test_rollback_is_one_call(store: RuleStore, shipped: RuleBundle) -> None:
    store.ensure_default()
    store.publish(to_city_management(shipped), author="analyst-li")
    back = store.rollback(actor="supervisor-wang")
    assert back.id == 1 and store.active_version_id() == 1
    with pytest.raises(RuleStoreError, match="oldest"):
        store.rollback()
    forward = store.rollback(2, actor="supervisor-wang", note="fixed upstream")
    assert forward.id == 2 and store.active_version_id() == 2
    assert [a.action for a in store.activations()] == ["rollback", "rollback", "publish", "default"]
    with pytest.raises(RuleStoreError, match="already active"):
        store.rollback(2)


def test_router_picks_up_a_new_version_without_restart(database_url: str, shipped: RuleBundle) -> None:
    clock = Clock()
    worker_store = RuleStore.open(database_url, migrate=False)  # the running pipeline
    rules = PublishedRules(worker_store, refresh_seconds=5.0, clock=clock)
    router = DecisionTableRouter(rules)
    first = router.route_call(call("城乡建设", call_id="a"))
    assert first.department == "A3区住房和城乡建设局" and first.rules_version.startswith("v1-")

    cli_store = RuleStore.open(database_url, migrate=False)  # another process: `hotline rules publish`
    cli_store.publish(to_city_management(shipped), author="analyst-li", note="try 城管")
    clock.now = 4.9
    assert router.route_call(call("城乡建设", call_id="b")).department == "A3区住房和城乡建设局"
    clock.now = 5.0
    switched = router.route_call(call("城乡建设", call_id="c"))
    assert switched.department == "A3区城市管理局" and switched.rules_version.startswith("v2-")

    cli_store.rollback(actor="supervisor-wang")
    clock.now = 10.0
    back = router.route_call(call("城乡建设", call_id="d"))
    assert back.department == "A3区住房和城乡建设局" and back.rules_version.startswith("v1-")


def test_a_version_that_does_not_compile_is_skipped_while_the_old_one_serves(database_url: str) -> None:
    clock = Clock()
    store = RuleStore.open(database_url, migrate=False)
    rules = PublishedRules(store, refresh_seconds=1.0, clock=clock)
    router = DecisionTableRouter(rules)
    assert router.route_call(call()).rules_version.startswith("v1-")
    with store.session() as session, session.begin():  # written past validation, e.g. by hand in the DB
        files = dict(store.bundle(1).files)
        files["department.json"] = "{ not json"
        version = RuleVersion(content_hash="x" * 64, author="someone", note="", created_at=datetime.now(UTC),
                              source=None, files=files)
        session.add(version)
    with store.session() as session, session.begin():
        from dispatch_rules.models import RuleActivation

        session.add(RuleActivation(version_id=2, action="publish", actor="someone", at=datetime.now(UTC)))
    clock.now = 2.0
    decision = router.route_call(call())
    assert decision.rules_version.startswith("v1-") and decision.department == "A3区住房和城乡建设局"


def test_migration_0002_upgrades_and_downgrades(database_url: str) -> None:
    store = RuleStore.open(database_url, migrate=False)
    assert {"rule_versions", "rule_activations", "tickets"} <= set(inspect(store.engine).get_table_names())
    store.engine.dispose()
    command.downgrade(alembic_config(database_url), "0001")
    store = RuleStore.open(database_url, migrate=False)
    names = set(inspect(store.engine).get_table_names())
    assert "rule_versions" not in names and "tickets" in names
    store.engine.dispose()
    command.upgrade(alembic_config(database_url), "head")


def test_the_production_router_shares_the_ticket_database(database_url: str) -> None:
    from tickets.store import TicketStore

    tickets = TicketStore(database_url, migrate=False)
    router = DecisionTableRouter.published(tickets.engine, refresh_seconds=5.0)
    decision = router.route_call(call("教育文体"))
    assert decision.department == "A3区教育局" and decision.rules_version.startswith("v1-")
    assert tickets.create_from_decision(decision).ticket.rules_version == decision.rules_version
