"""The consoles' fixtures: an app on a temporary migrated database with one user per console role, the real
text models (`text_intelligence` from tests/conftest.py), seeded tickets routed by the real decision tables,
and a real uvicorn server for the browser tests.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from api import create_app
from api.users import add_user
from classifiers.data import message_text
from classifiers.service import TextIntelligence
from contracts import (
    CategoryScore,
    Channel,
    ClassifiedCall,
    DetectedEvent,
    DispatchDecision,
    EventKind,
    HotlineTranscript,
)
from dispatch_rules.router import DecisionTableRouter
from hotline.pipeline import BASELINE_MODEL_FILE
from hotline.settings import REPO_ROOT, Settings
from streams import EmbeddedBus
from tickets import TicketStore

SHARED_DIR = REPO_ROOT.parent / "shared"
USERS = {"agent": "agent", "manager": "manager", "analyst": "analyst"}
MANAGER_ACTOR = "manager:seed"


# ---- text intelligence: the session-scoped `text_intelligence` fixture of tests/conftest.py -----------------
def remember_open_ticket(intelligence: TextIntelligence, ticket_id: str, text: str, district: str,
                         department: str, title: str) -> None:
    """What the assist stage would have seen: an earlier call in the district, and its open ticket."""
    call_id = f"seen-{ticket_id}"
    transcript = HotlineTranscript(call_id=call_id, received_at=datetime.now(UTC), title=title, text=text,
                                   district_hint=district)
    call = intelligence.classify(transcript)
    assistant = intelligence.assistant
    assistant.store.remember_call(call_id, call.district, title, message_text(title, text), call.received_at)
    assistant.store.note_ticket(f"call:{call_id}", ticket_id, "dispatched", department, title, datetime.now(UTC))


# ---- apps -------------------------------------------------------------------------------------------------------
@dataclass
class ConsoleApp:
    app: FastAPI
    settings: Settings
    store: TicketStore
    bus: EmbeddedBus
    tokens: dict[str, str] = field(default_factory=dict)
    seeded: dict[str, str] = field(default_factory=dict)

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}


def build_console_app(folder: Path, template_db: Path, model_file: Path,
                      intelligence: TextIntelligence | None) -> ConsoleApp:
    settings = Settings(data_dir=folder, shared_dir=SHARED_DIR, rules_refresh_seconds=0.5)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    for file in model_file.parent.glob(f"{Path(BASELINE_MODEL_FILE).stem}*"):
        shutil.copy(file, settings.models_dir / file.name)
    shutil.copy(template_db, folder / "tickets.sqlite3")
    store = TicketStore(settings.resolved_database_url, migrate=False)
    bus = EmbeddedBus(settings.journal_path, settings.max_message_bytes)
    app = create_app(settings, store=store, transport=bus, text_intelligence=intelligence)
    made = ConsoleApp(app, settings, store, bus)
    for name, role in USERS.items():
        made.tokens[name] = add_user(store, name, role)[1]
    return made


@pytest.fixture
def console_app(tmp_path: Path, migrated_db: Path, baseline_model_file: Path,
                text_intelligence: TextIntelligence) -> Iterator[ConsoleApp]:
    made = build_console_app(tmp_path / "data", migrated_db, baseline_model_file, text_intelligence)
    yield made
    made.bus.close()


@pytest.fixture
def client(console_app: ConsoleApp) -> Iterator[TestClient]:
    with TestClient(console_app.app) as test_client:
        yield test_client


# ---- seeded tickets -----------------------------------------------------------------------------------------------
def jpeg_snapshot() -> str:
    """A small street scene with a 'garbage pile' box, as a camera snapshot (base64 JPEG)."""
    image = Image.new("RGB", (320, 200), (150, 170, 190))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 120, 320, 200), fill=(90, 90, 95))
    draw.rectangle((40, 60, 120, 120), fill=(200, 190, 170))
    draw.ellipse((170, 120, 260, 170), fill=(110, 80, 40))
    draw.rectangle((165, 110, 265, 175), outline=(255, 40, 40), width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return base64.b64encode(buffer.getvalue()).decode()


def _call(n: int, category: str, district: str | None, title: str, text: str) -> ClassifiedCall:
    return ClassifiedCall(
        call_id=f"seed-{n}", received_at=datetime.now(UTC), channel=Channel.PHONE, title=title, text=text,
        category=category, confidence=0.92, top_k=[CategoryScore(label=category, score=0.92)],
        classifier="seed", district=district)


def _camera(router: DecisionTableRouter, n: int, kind: str, district: str, snapshot: str | None) -> DispatchDecision:
    event = DetectedEvent(event_id=f"evt-{n}", camera_id=f"cam-{district[:2]}-000{n}", kind=EventKind(kind),
                          state="started", started_at=datetime.now(UTC), observed_at=datetime.now(UTC),
                          confidence=0.9, district=district, detector="seed-yolo")
    decision = router.route_event(event)
    if snapshot is None:
        return decision
    return decision.model_copy(update={"explanation": {**decision.explanation, "snapshot_jpeg": snapshot}})


SEED_CALLS = [
    ("overdue", "城乡建设", "A3区", "小区门口垃圾堆积", "A3区幸福路幸福小区门口垃圾堆积多日无人清运，臭气熏天。"),
    ("escalated", "城乡建设", "A3区", "路边垃圾无人清运", "A3区人民路公交站旁垃圾桶满溢，垃圾散落一地。"),
    ("resolved", "城乡建设", "A5区", "自来水停水", "A5区建设路102号小区停水两天了，没有任何通知。"),
    ("open", "劳动和社会保障", "A5区", "工地拖欠工资", "A5区某工地拖欠农民工工资三个月，要求尽快解决。"),
    ("manual", "城乡建设", "A3区", "小区垃圾清运不及时", "A3区花园小区垃圾清运不及时，楼道里都是垃圾。"),
    ("assigned", "城乡建设", "A3区", "垃圾站异味扰民", "A3区和平路垃圾站垃圾堆积，异味很大，影响居民生活。"),
]


def seed_tickets(made: ConsoleApp) -> dict[str, str]:
    """Tickets in every state the manager console shows: overdue, escalated, resolved + callback, open, manual,
    manually assigned, and two camera cases (one with its snapshot)."""
    store = made.store
    router = DecisionTableRouter.published(store.engine)
    lifecycle = made.app.state.context.lifecycle
    ids: dict[str, str] = {}
    for n, (name, category, district, title, text) in enumerate(SEED_CALLS, 1):
        decision = router.route_call(_call(n, category, district, title, text))
        if name in ("overdue", "escalated"):
            decision = decision.model_copy(update={"decided_at": datetime.now(UTC) - timedelta(days=5),
                                                   "deadline_at": datetime.now(UTC) - timedelta(days=2)})
        if name in ("manual", "assigned"):
            decision = decision.model_copy(update={"department": None, "manual_reason": "seed: manual"})
        ids[name] = store.create_from_decision(decision).ticket.id
    ids["camera_snapshot"] = store.create_from_decision(
        _camera(router, 1, "exposed_garbage", "A3区", jpeg_snapshot())).ticket.id
    ids["camera_plain"] = store.create_from_decision(_camera(router, 2, "illegal_parking", "A5区", None)).ticket.id
    lifecycle.escalate(ids["escalated"], MANAGER_ACTOR, "群众多次来电")
    lifecycle.assign(ids["assigned"], "A3区城市管理局", MANAGER_ACTOR)  # a dispatcher's choice: backtest truth
    resolved = ids["resolved"]
    department = store.get(resolved)
    assert department is not None and department.department
    actor = f"department:seed@{department.department}"
    lifecycle.accept(resolved, actor)
    lifecycle.start(resolved, actor)
    lifecycle.resolve(resolved, actor, "已恢复供水")
    lifecycle.verify(resolved, "agent:seed", satisfied=True)
    lifecycle.accept(ids["open"], "department:seed")
    made.seeded = ids
    return ids


# ---- a real server -----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    made: ConsoleApp
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_server(made: ConsoleApp) -> LiveServer:
    port = free_port()
    config = uvicorn.Config(made.app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                            log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="console-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the console app did not start")
        time.sleep(0.05)
    return LiveServer(made, f"http://127.0.0.1:{port}", server, thread)


def edited_department_table(role_from: str, role_to: str, rule_id: str) -> str:
    """The shipped department table with one row's role changed (what an analyst would upload)."""
    from dispatch_rules.bundle import DEFAULT_TABLES_DIR

    graph: dict[str, Any] = json.loads((DEFAULT_TABLES_DIR / "department.json").read_text(encoding="utf-8"))
    node = next(n for n in graph["nodes"] if n["type"] == "decisionTableNode")
    row = next(r for r in node["content"]["rules"] if r["_id"] == rule_id)
    assert row["out-role"] == json.dumps(role_from, ensure_ascii=False)
    row["out-role"] = json.dumps(role_to, ensure_ascii=False)
    return json.dumps(graph, ensure_ascii=False, indent=2)
