"""Migrations on a real PostgreSQL server: hosts upgrading one fresh database at once (`hotline setup` on each
worker host) queue behind each other instead of racing to create the same tables."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from hotline.settings import REPO_ROOT
from tickets.migrate import alembic_config

HOSTS = 4
# each process sleeps until the same moment, so all of them reach the empty database together
_UPGRADE = ("import sys, time; from tickets.migrate import upgrade_database; "
            "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); upgrade_database(sys.argv[1])")


@pytest.mark.slow
def test_hosts_upgrading_a_fresh_postgresql_database_at_once_all_succeed(postgres_db: str) -> None:
    env = os.environ | {"PYTHONPATH": str(REPO_ROOT)}
    start_at = str(time.time() + 5)  # time enough for every process to import alembic and the models
    hosts = [subprocess.Popen([sys.executable, "-c", _UPGRADE, postgres_db, start_at], env=env, cwd=REPO_ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(HOSTS)]
    outputs = [host.communicate(timeout=120)[0] for host in hosts]
    failed = [output.strip().splitlines()[-1:] for host, output in zip(hosts, outputs, strict=True)
              if host.returncode != 0]
    assert failed == []
    engine = create_engine(postgres_db)
    with engine.connect() as connection:
        versions = connection.execute(text("select version_num from alembic_version")).scalars().all()
    engine.dispose()
    assert versions == [ScriptDirectory.from_config(alembic_config(postgres_db)).get_current_head()]
