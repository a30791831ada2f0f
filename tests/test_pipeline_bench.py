"""The pipeline bench runs in a temporary directory whatever the deployment's settings name: its tickets never
reach the configured database, and it counts only its own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from hotline.settings import REPO_ROOT, Settings


def test_the_bench_leaves_the_configured_database_and_broker_alone(make_settings: Callable[..., Settings],
                                                                   tmp_path: Path) -> None:
    settings = make_settings()
    production_db = tmp_path / "production-tickets.sqlite3"
    deployed = {name: value for name, value in os.environ.items() if not name.startswith("HOTLINE_")} | {
        "PYTHONPATH": str(REPO_ROOT),
        "HOTLINE_DATA_DIR": str(settings.data_dir),
        "HOTLINE_SHARED_DIR": str(settings.shared_dir),
        "HOTLINE_DATABASE_URL": f"sqlite:///{production_db}",
        "HOTLINE_TRANSPORT": "kafka",
        "HOTLINE_KAFKA__BOOTSTRAP_SERVERS": "kafka-1.invalid:9092",
    }
    bench = subprocess.run([sys.executable, "-m", "bench.pipeline_bench", "--messages", "3"], cwd=REPO_ROOT,
                           env=deployed, capture_output=True, text=True, timeout=300)
    assert bench.returncode == 0, bench.stderr
    figures = dict(line.split() for line in bench.stdout.splitlines() if line.startswith("  "))
    assert figures["transcripts"] == "3.0" and figures["tickets"] == "3.0"
    assert not production_db.exists()
