"""Open311 GeoReport v2: services, filing through the pipeline, and querying, in JSON and XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import create_app
from api.users import add_user
from contracts import HotlineTranscript, Topic
from hotline.pipeline import build_pipeline
from hotline.settings import REPO_ROOT, Settings
from streams import EmbeddedBus
from tickets import TicketStore

from ..postgres_server import postgres_server
from .conftest import A3, A5, Api

GARBAGE = "A3区幸福路小区门口垃圾堆积多日无人清理，臭味很大，影响居民出行，请尽快处理。"


def _xml(body: bytes) -> ET.Element:
    return ET.fromstring(body)


def _errors(response: Any) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = response.json()
    return errors


def test_services_and_definitions_in_json_and_xml(api: Api) -> None:
    services = api.client.get("/open311/v2/services.json").json()
    codes = {s["service_code"]: s for s in services}
    assert codes["urban_construction"]["service_name"] == "城乡建设" and codes["200102"]["group"] == "数字化城管"
    assert all(s["type"] == "realtime" and s["metadata"] is True for s in services)
    root = _xml(api.client.get("/open311/v2/services.xml").content)
    assert root.tag == "services" and len(root.findall("service")) == len(services)
    first = root.find("service")
    assert first is not None and first.findtext("service_code") == services[0]["service_code"]
    assert first.findtext("metadata") == "true"

    definition = api.client.get("/open311/v2/services/urban_construction.json").json()
    assert definition["service_code"] == "urban_construction"
    assert definition["attributes"][0]["code"] == "district"
    root = _xml(api.client.get("/open311/v2/services/200102.xml").content)
    assert root.tag == "service_definition" and root.findtext("attributes/attribute/code") == "district"

    missing = api.client.get("/open311/v2/services/nope.json")
    assert missing.status_code == 404
    assert _errors(missing) == [{"code": 404, "description": "unknown service_code 'nope'"}]
    missing = api.client.get("/open311/v2/services/nope.xml")
    assert missing.status_code == 404 and _xml(missing.content).findtext("error/code") == "404"
    assert api.client.get("/open311/v2/services.yaml").status_code == 404
    assert _xml(api.client.get("/open311/v2/nothing-here.xml").content).tag == "errors"
    discovery = api.client.get("/open311/v2/discovery.json").json()
    assert discovery["endpoints"][0]["url"].endswith("/open311/v2")


def test_filing_and_querying_round_trip_through_the_pipeline(make_api: Callable[..., Api],
                                                              make_settings: Callable[..., Settings]) -> None:
    api = make_api(make_settings())
    c, key = api.client, api.tokens["agent"]

    filed = c.post("/open311/v2/requests.json", data={
        "api_key": key, "service_code": "200102", "description": GARBAGE, "address_string": "A3区幸福路12号",
        "lat": "30.27", "long": "120.15", "phone": "13812345678", "attribute[district]": "A3区",
        "media_url": "https://example.org/p.jpg", "account_id": "u-42"})
    assert filed.status_code == 200, filed.text
    [answer] = filed.json()
    request_id = answer["service_request_id"]
    assert request_id.startswith("o311-") and answer["account_id"] == "u-42" and answer["service_notice"]

    [transcript] = [HotlineTranscript.model_validate_json(r.value) for r in api.bus.records(Topic.TRANSCRIPTS)]
    assert transcript.call_id == request_id and transcript.channel == "app"
    assert transcript.caller_phone is not None and "1234" not in transcript.caller_phone  # masked
    assert transcript.district_hint == "A3区"
    assert transcript.text == GARBAGE + "\n地址：A3区幸福路12号"

    before = c.get(f"/open311/v2/requests/{request_id}.json", params={"api_key": key}).json()
    assert before[0]["status"] == "open" and before[0]["service_code"] == "200102" and before[0]["lat"] == 30.27
    assert "being classified" in before[0]["status_notes"]

    xml_filed = c.post("/open311/v2/requests.xml", data={
        "api_key": key, "service_code": "environmental_protection", "address_string": "A5区东风路",
        "description": "A5区东风路饭店油烟很大，晚上噪声扰民，请环保部门处理。"})
    assert xml_filed.status_code == 200 and xml_filed.headers["content-type"].startswith("application/xml")
    second_id = _xml(xml_filed.content).findtext("request/service_request_id")
    assert second_id and second_id.startswith("o311-")

    waiting = c.get("/open311/v2/requests.json", params={"api_key": key}).json()  # filed, not ticketed yet
    assert sorted(r["service_request_id"] for r in waiting) == sorted([request_id, second_id])
    assert all(r["status"] == "open" and r["agency_responsible"] is None for r in waiting)
    by_code = c.get("/open311/v2/requests.json", params={"api_key": key, "service_code": "200102"}).json()
    assert [r["service_request_id"] for r in by_code] == [request_id]
    assert c.get("/open311/v2/requests.json", params={"api_key": key, "status": "closed"}).json() == []

    store = api.store
    bus_processed = api.bus.run_until_idle(build_pipeline(api.settings, store).stages)
    assert bus_processed >= 6  # two transcripts through classify, dispatch and ticketing
    ticket = store.by_source_event(f"call:{request_id}")
    assert ticket is not None and ticket.status in ("dispatched", "pending_manual")

    [after] = c.get(f"/open311/v2/requests/{request_id}.json", params={"api_key": key}).json()
    assert after["service_request_id"] == request_id and after["status"] == "open"
    assert after["agency_responsible"] == ticket.department
    assert after["lat"] == 30.27 and after["long"] == 120.15 and after["media_url"] == "https://example.org/p.jpg"
    assert after["expected_datetime"] is not None and after["description"].startswith("A3区幸福路")
    root = _xml(c.get(f"/open311/v2/requests/{request_id}.xml", headers={"Authorization": f"Bearer {key}"}).content)
    assert root.tag == "service_requests" and root.findtext("request/service_request_id") == request_id
    assert root.findtext("request/status") == "open"

    # the ticket moves on; Open311 says closed once it is resolved, with the handling note
    department = ticket.department or A3
    if ticket.status == "pending_manual":
        api.client.post(f"/api/tickets/{ticket.id}/assign", headers=api.auth("manager"), json={"department": A3})
        department = A3
    lc = api.client.app.state.context.lifecycle  # type: ignore[attr-defined]
    lc.accept(ticket.id, "d", as_department=department)
    lc.start(ticket.id, "d", as_department=department)
    lc.resolve(ticket.id, "d", "已清运", as_department=department)
    [done] = c.get(f"/open311/v2/requests/{request_id}.json", params={"api_key": key}).json()
    assert done["status"] == "closed" and "已清运" in done["status_notes"]

    everything = c.get("/open311/v2/requests.json", params={"api_key": key}).json()
    assert sorted(r["service_request_id"] for r in everything) == sorted([request_id, second_id])  # once each
    closed = c.get("/open311/v2/requests.json", params={"api_key": key, "status": "closed"}).json()
    assert [r["service_request_id"] for r in closed] == [request_id]
    open_ = c.get("/open311/v2/requests.json", params={"api_key": key, "status": "open"}).json()
    assert [r["service_request_id"] for r in open_] == [second_id]
    by_id = c.get("/open311/v2/requests.json", params={"api_key": key, "service_request_id": f"{second_id},nope"})
    assert [r["service_request_id"] for r in by_id.json()] == [second_id]
    future = (api.clock.now + timedelta(days=1)).isoformat()
    later = c.get("/open311/v2/requests.json", params={"api_key": key, "start_date": future})
    assert later.status_code == 200 and later.json() == []
    listed = _xml(c.get("/open311/v2/requests.xml", params={"api_key": key}).content)
    assert len(listed.findall("request")) == 2
    if ticket.category == "城乡建设":
        by_code = c.get("/open311/v2/requests.json", params={"api_key": key, "service_code": "urban_construction"})
        assert request_id in {r["service_request_id"] for r in by_code.json()}

    token = c.get(f"/open311/v2/tokens/{request_id}.json", params={"api_key": key}).json()
    assert token == [{"token": request_id, "service_request_id": request_id}]


def test_open311_errors_and_access(api: Api) -> None:
    c = api.client
    base = {"service_code": "urban_construction", "description": GARBAGE, "address_string": "A3区幸福路"}

    r = c.post("/open311/v2/requests.json", data=base)
    assert r.status_code == 401 and _errors(r) == [{"code": 401, "description": "api_key is required"}]
    r = c.post("/open311/v2/requests.xml", data={**base, "api_key": "hl_nope"})
    assert r.status_code == 403 and _xml(r.content).findtext("error/description") == "invalid or revoked api_key"
    r = c.post("/open311/v2/requests.json", data={**base, "api_key": api.tokens["a3"]})
    assert r.status_code == 403 and "agent or manager" in _errors(r)[0]["description"]

    key = api.tokens["manager"]
    for changes, problem in (
        ({"service_code": "bogus"}, "unknown service_code 'bogus'"),
        ({"service_code": ""}, "service_code is required"),
        ({"address_string": ""}, "a location is required"),
        ({"address_string": "", "lat": "30.1"}, "lat and long go together"),
        ({"lat": "north", "long": "1"}, "lat is not a number"),
        ({"lat": "91", "long": "1"}, "lat out of range"),
        ({"description": "  "}, "description is required"),
    ):
        r = c.post("/open311/v2/requests.json", data={**base, **changes, "api_key": key})
        assert r.status_code == 400, (changes, r.text)
        assert _errors(r)[0]["description"].startswith(problem), (changes, _errors(r))
    r = c.post("/open311/v2/requests.json", json={**base, "api_key": key})  # JSON bodies are accepted too
    assert r.status_code == 200
    assert api.bus.count(Topic.TRANSCRIPTS) == 1  # only the accepted request was published

    r = c.get("/open311/v2/requests.json", params={"api_key": key, "status": "maybe"})
    assert r.status_code == 400 and _errors(r)[0]["description"] == "status is open or closed"
    r = c.get("/open311/v2/requests.json", params={"api_key": key, "start_date": "yesterday"})
    assert r.status_code == 400 and "ISO 8601" in _errors(r)[0]["description"]
    assert c.get("/open311/v2/requests.json").status_code == 401
    r = c.get("/open311/v2/requests/none.xml", params={"api_key": key})
    assert r.status_code == 404 and _xml(r.content).findtext("error/code") == "404"
    r = c.delete("/open311/v2/requests.json")
    assert r.status_code == 405 and _errors(r)[0]["code"] == 405

    # a department reads only its own department's requests
    api.ticket()
    api.ticket(department=A5)
    seen = c.get("/open311/v2/requests.json", params={"api_key": api.tokens["a3"]}).json()
    assert [r["agency_responsible"] for r in seen] == [A3]
    assert c.get("/open311/v2/requests/c2.json", params={"api_key": api.tokens["a3"]}).status_code == 404
    assert c.get("/open311/v2/requests/c1.json", params={"api_key": api.tokens["a3"]}).json()[0]["status"] == "open"


def test_service_request_id_overrides_every_other_argument(api: Api) -> None:
    api.ticket()  # call c1, category 城乡建设, open, created now
    key = api.tokens["manager"]
    future = (api.clock.now + timedelta(days=1)).isoformat()
    for others in ({}, {"status": "closed"}, {"service_code": "transport"}, {"start_date": future},
                   {"service_code": "bogus", "status": "maybe"}):
        r = api.client.get("/open311/v2/requests.json", params={"api_key": key, "service_request_id": "c1", **others})
        assert r.status_code == 200 and [x["service_request_id"] for x in r.json()] == ["c1"], (others, r.text)
    r = api.client.get("/open311/v2/requests.json", params={"api_key": api.tokens["a5"], "service_request_id": "c1"})
    assert r.json() == []  # a department still sees only its own


def test_xml_answers_stay_well_formed_and_filing_refuses_control_characters(api: Api) -> None:
    key = api.tokens["manager"]
    r = api.client.post("/open311/v2/requests.json", json={
        "api_key": key, "service_code": "200102", "address_string": "A3区幸福路1号", "description": "垃圾\x0b堆积\x01"})
    assert r.status_code == 400 and _errors(r)[0]["description"].startswith("description contains the character U+000B")
    r = api.client.post("/open311/v2/requests.xml", data={
        "api_key": key, "service_code": "200102", "address_string": "A3区\x1f幸福路", "description": GARBAGE})
    assert r.status_code == 400 and "address_string contains the character U+001F" in (
        _xml(r.content).findtext("error/description") or "")
    assert api.bus.count(Topic.TRANSCRIPTS) == 0

    api.ticket(title="垃圾\x0b堆积\x01")  # a call from another channel carries them into the ticket
    root = _xml(api.client.get("/open311/v2/requests/c1.xml", params={"api_key": key}).content)
    assert (root.findtext("request/description") or "").startswith("垃圾\ufffd堆积\ufffd")
    assert len(_xml(api.client.get("/open311/v2/requests.xml", params={"api_key": key}).content)) == 1
    [as_json] = api.client.get("/open311/v2/requests/c1.json", params={"api_key": key}).json()
    assert as_json["description"].startswith("垃圾\x0b堆积\x01")  # JSON escapes them: kept as they are


def test_filed_fields_longer_than_their_columns_are_refused(api: Api) -> None:
    key = api.tokens["manager"]
    base = {"api_key": key, "service_code": "200102", "description": GARBAGE, "address_string": "A3区幸福路"}
    for field, value in (("address_string", "A3区" + "某路" * 150), ("address_id", "x" * 301),
                         ("media_url", "https://example.org/" + "p" * 481)):
        r = api.client.post("/open311/v2/requests.json", data={**base, field: value})
        assert r.status_code == 400, (field, r.text)
        assert _errors(r)[0]["description"].startswith(f"{field} is too long: {len(value)} characters, at most")
    longest = {**base, "address_string": "某" * 300, "media_url": "https://example.org/" + "p" * 480}
    assert api.client.post("/open311/v2/requests.json", data=longest).status_code == 200
    [stored] = api.client.get("/open311/v2/requests.json", params={"api_key": key}).json()
    assert stored["media_url"] == longest["media_url"] and stored["address"] == longest["address_string"]


@pytest.mark.slow
def test_over_long_fields_answer_400_on_postgresql(tmp_path: Path) -> None:
    with postgres_server() as url:
        settings = Settings(data_dir=tmp_path / "data", shared_dir=REPO_ROOT.parent / "shared", database_url=url,
                            escalation_sweep_seconds=0)
        settings.data_dir.mkdir(parents=True)
        store = TicketStore(url)
        bus = EmbeddedBus(settings.journal_path, max_bytes=lambda _topic: 10**7)
        with TestClient(create_app(settings, store=store, transport=bus), raise_server_exceptions=False) as client:
            key = add_user(store, "zhao", "manager")[1]
            r = client.post("/open311/v2/requests.json", data={
                "api_key": key, "service_code": "200102", "description": GARBAGE,
                "address_string": "A3区" + "某路" * 200})
            assert r.status_code == 400 and _errors(r)[0]["description"].startswith("address_string is too long")
            assert bus.count(Topic.TRANSCRIPTS) == 0
        bus.close()
        store.engine.dispose()


def test_ids_and_dates_without_a_zone_are_the_citys(api: Api) -> None:
    key = api.tokens["agent"]
    api.clock.now = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)  # 07:30 on 2 March in the city
    r = api.client.post("/open311/v2/requests.json", data={
        "api_key": key, "service_code": "200102", "description": GARBAGE, "address_string": "A3区幸福路"})
    assert r.json()[0]["service_request_id"].startswith("o311-20260302-")
    for start, found in (("2026-03-02T07:00:00", 1), ("2026-03-02T08:00:00", 0), ("2026-03-02", 1),
                         ("2026-03-01T23:00:00+00:00", 1), ("2026-03-01T23:45:00Z", 0)):
        r = api.client.get("/open311/v2/requests.json", params={"api_key": key, "start_date": start})
        assert len(r.json()) == found, (start, r.json())
    r = api.client.get("/open311/v2/requests.json", params={"api_key": key, "end_date": "2026-03-02T07:00:00"})
    assert r.json() == []
