"""End-to-end throughput of the embedded pipeline (ingest -> classify -> dispatch -> ticket) on real messages."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from hotline.ingest import ingest_transcripts
from hotline.pipeline import BASELINE_MODEL_FILE, build_pipeline, open_embedded_bus, open_store
from hotline.settings import Settings, get_settings


def run(messages: int) -> dict[str, float]:
    source = get_settings()
    with tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(source, Path(tmp))
        settings.models_dir.mkdir(parents=True)
        for file in source.models_dir.glob(f"{Path(BASELINE_MODEL_FILE).stem}*"):
            (settings.models_dir / file.name).write_bytes(file.read_bytes())
        bus = open_embedded_bus(settings)
        store = open_store(settings)
        pipeline = build_pipeline(settings, store)
        started = time.perf_counter()
        report = ingest_transcripts(bus, settings.hotline_data_dir / "unlabeled_messages.csv", limit=messages)
        ingested = time.perf_counter()
        stage_rates = {}
        for stage in pipeline.stages:
            t0 = time.perf_counter()
            consumed = 0
            while n := bus.step(stage):
                consumed += n
            if consumed:
                stage_rates[f"{stage.name}_per_s"] = consumed / (time.perf_counter() - t0)
        finished = time.perf_counter()
        tickets = store.count()
        bus.close()
    return {
        "transcripts": report.accepted,
        "tickets": tickets,
        "ingest_per_s": report.accepted / (ingested - started),
        "end_to_end_per_s": report.accepted / (finished - started),
        **stage_rates,
    }


def bench_settings(source: Settings, tmp: Path) -> Settings:
    """Everything the bench writes stays in `tmp`: the journal, and the ticket database, which HOTLINE_DATABASE_URL
    or the config file would otherwise point at the deployment's own."""
    return Settings(data_dir=tmp, shared_dir=source.shared_dir, transport="embedded",
                    database_url=f"sqlite:///{tmp / 'tickets.sqlite3'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    args = parser.parse_args()
    figures = run(args.messages)
    print(f"embedded pipeline, {figures['transcripts']:.0f} real messages, baseline classifier, SQLite")
    for name, value in figures.items():
        print(f"  {name:<28} {value:>10.1f}")


if __name__ == "__main__":
    main()
