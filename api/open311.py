"""Open311 GeoReport v2 under /open311/v2, in JSON and XML (chosen by the extension).

- services: the hotline's top-level categories and the 数字化城管 event kinds the cameras report.
- POST requests: a request is filed as a HotlineTranscript (channel app) on the transcripts topic, so the
  normal pipeline classifies, routes and tickets it like any call; its service_request_id is that call id,
  known at once (the ticket behind it appears once the pipeline has run). The ticket's classification is
  authoritative: once ticketed, service_code is the service of the ticket's category.
  A field with a control character XML 1.0 forbids, or longer than the column keeping it, is refused (400).
- GET requests: tickets (from every channel and the cameras) as Open311 requests, status open / closed,
  our finer lifecycle status in status_notes. A hotline ticket's service_request_id is its call id,
  any other ticket's its ticket id. service_request_id overrides every other argument; a start_date or
  end_date without a zone is the city's time (Asia/Shanghai).
- api_key (query or form field, or an Authorization bearer header) is one of our API tokens. Filing needs
  an agent or manager token (an intake application's account). Reading requests needs a token too: 12345
  case contents are not public; a department token reads only its department's requests.
- Errors: a list of {code, description} with the HTTP status 400 / 401 / 403 / 404.
"""

from __future__ import annotations

import json
import re
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy import Select, exists, literal, select

from api.context import ApiContext
from api.users import Principal, Role, authenticate
from contracts import CITY_TZ, CITYMGMT_EVENT_CODES, Channel, HotlineTranscript, Topic, city_time
from tickets.models import Open311Request, Ticket, TicketStatus, column_length

router = APIRouter(prefix="/open311/v2", tags=["open311"])

FORMATS = ("json", "xml")
DEFAULT_WINDOW = timedelta(days=90)
MAX_RESULTS = 1000
CLOSED_STATUSES = frozenset({TicketStatus.RESOLVED, TicketStatus.VERIFIED, TicketStatus.CLOSED,
                             TicketStatus.MERGED})
FILING_ROLES = frozenset({Role.AGENT, Role.MANAGER})
# what XML 1.0 allows in a document: every other character makes an answer no XML parser reads
XML_FORBIDDEN = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
XML_LISTS = {"services": "service", "service_requests": "request", "errors": "error", "attributes": "attribute",
             "values": "value", "endpoints": "endpoint", "formats": "format", "service_request_ids": "id"}


@dataclass(frozen=True)
class Service:
    code: str
    name: str
    description: str
    group: str
    keywords: tuple[str, ...]
    categories: tuple[str, ...]  # the ticket categories that are this service

    def as_open311(self) -> dict[str, Any]:
        return {"service_code": self.code, "service_name": self.name, "description": self.description,
                "metadata": True, "type": "realtime", "keywords": ",".join(self.keywords), "group": self.group}


_HOTLINE = "12345 市民热线"
_CITYMGMT = "数字化城管"
SERVICES: tuple[Service, ...] = (
    Service("urban_construction", "城乡建设", "住房、物业、市政设施、施工扰民、违章建筑等", _HOTLINE,
            ("住房", "物业", "施工", "市政"), ("城乡建设",)),
    Service("labour_social_security", "劳动和社会保障", "工资拖欠、社保、就业、劳动合同等", _HOTLINE,
            ("欠薪", "社保", "就业"), ("劳动和社会保障",)),
    Service("education_culture_sports", "教育文体", "学校、培训机构、文化体育场馆等", _HOTLINE,
            ("学校", "教育", "文体"), ("教育文体",)),
    Service("commerce_tourism", "商贸旅游", "消费纠纷、商户经营、旅游服务等", _HOTLINE,
            ("消费", "商户", "旅游"), ("商贸旅游",)),
    Service("environmental_protection", "环境保护", "噪声、油烟、废气、污水等污染", _HOTLINE,
            ("噪声", "污染", "油烟"), ("环境保护",)),
    Service("health_family_planning", "卫生计生", "医疗服务、卫生、计划生育等", _HOTLINE,
            ("医疗", "卫生"), ("卫生计生",)),
    Service("transport", "交通运输", "公交、出租车、道路交通等", _HOTLINE,
            ("公交", "出租车", "交通"), ("交通运输",)),
    *(
        Service(code, name, description, _CITYMGMT, keywords,
                (code, *(kind.value for kind, c in CITYMGMT_EVENT_CODES.items() if c == code)))
        for code, name, description, keywords in (
            ("200102", "暴露垃圾/垃圾满溢", "道路、小区周边暴露垃圾或垃圾桶满溢", ("垃圾", "垃圾桶")),
            ("200505", "违章停车", "机动车、非机动车违章停放", ("停车", "占道")),
            ("200306", "道路破损", "路面坑洼、破损、塌陷", ("道路", "坑洼")),
            ("200501", "占道经营", "流动摊贩、店外经营", ("摊贩", "占道")),
            ("200411", "火情/烟雾", "冒烟、明火等火情（紧急情况请拨打119）", ("火", "烟")),
            ("200111", "道路积水", "道路、下穿通道积水", ("积水", "内涝")),
        )
    ),
)
SERVICES_BY_CODE = {s.code: s for s in SERVICES}
SERVICE_BY_CATEGORY = {category: s for s in SERVICES for category in s.categories}
DISTRICT_ATTRIBUTE = {
    "variable": True, "code": "district", "datatype": "string", "required": False,
    "datatype_description": "区县名，如 A3区", "order": 1,
    "description": "事件所在区县（不填时从描述中识别）", "values": [],
}


class Open311Error(Exception):
    def __init__(self, status: int, description: str, fmt: str = "json") -> None:
        super().__init__(description)
        self.status, self.description, self.fmt = status, description, fmt


def error_response(error: Open311Error) -> Response:
    errors = [{"code": error.status, "description": error.description}]
    return _render(error.fmt, "errors", errors, error.status)


# ---- discovery and services ------------------------------------------------------------------------------------
@router.get("/discovery.{fmt}", summary="Endpoints, versions and formats")
def discovery(request: Request, fmt: str) -> Response:
    fmt = _format(fmt)
    base = str(request.base_url).rstrip("/") + router.prefix
    return _render(fmt, "discovery", {
        "changeset": "2026-11-22T00:00:00+00:00", "contact": "12345 热线 (接诉即办)",
        "key_service": "ask the hotline operators for a token (hotline users add)",
        "endpoints": [{"specification": "http://wiki.open311.org/GeoReport_v2", "url": base,
                       "changeset": "2026-11-22T00:00:00+00:00", "type": "production", "formats": [
                           "application/json", "text/xml"]}],
    })


@router.get("/services.{fmt}", summary="Request types")
def services(fmt: str) -> Response:
    fmt = _format(fmt)
    return _render(fmt, "services", [s.as_open311() for s in SERVICES])


@router.get("/services/{service_code}.{fmt}", summary="A request type's extra attributes")
def service_definition(service_code: str, fmt: str) -> Response:
    fmt = _format(fmt)
    if service_code not in SERVICES_BY_CODE:
        raise Open311Error(404, f"unknown service_code {service_code!r}", fmt)
    return _render(fmt, "service_definition", {"service_code": service_code, "attributes": [DISTRICT_ATTRIBUTE]})


# ---- filing ---------------------------------------------------------------------------------------------------------
@router.post("/requests.{fmt}", summary="File a service request", openapi_extra={"requestBody": {
    "required": True,
    "content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object", "required": ["service_code", "description"],
        "properties": {name: {"type": "string"} for name in (
            "api_key", "jurisdiction_id", "service_code", "lat", "long", "address_string", "address_id",
            "attribute[district]", "description", "media_url", "email", "first_name", "last_name", "phone",
            "device_id", "account_id")},
    }}},
}})
async def create_request(request: Request, fmt: str) -> Response:
    fmt = _format(fmt)
    form = await _form(request, fmt)
    return await run_in_threadpool(_file_request, request, form, fmt)


def _file_request(request: Request, form: dict[str, str], fmt: str) -> Response:
    context = _context(request)
    principal = _caller(context, request, form.get("api_key"), fmt)
    if principal.role not in FILING_ROLES:
        raise Open311Error(403, f"filing requests needs an agent or manager api_key; {principal.name} is "
                                f"{principal.role.value}", fmt)
    _check_characters(form, fmt)
    service_code = form.get("service_code", "").strip()
    if not service_code:
        raise Open311Error(400, "service_code is required", fmt)
    if service_code not in SERVICES_BY_CODE:
        raise Open311Error(400, f"unknown service_code {service_code!r}; see services.{fmt}", fmt)
    lat, long = _coordinate(form.get("lat"), "lat", 90, fmt), _coordinate(form.get("long"), "long", 180, fmt)
    address = (form.get("address_string") or "").strip() or None
    address_id = (form.get("address_id") or "").strip() or None
    if (lat is None) != (long is None):
        raise Open311Error(400, "lat and long go together", fmt)
    if lat is None and address is None and address_id is None:
        raise Open311Error(400, "a location is required: lat and long, address_string or address_id", fmt)
    description = (form.get("description") or "").strip()
    if not description:
        raise Open311Error(400, "description is required: the hotline routes a request by what it says", fmt)
    media_url = (form.get("media_url") or "").strip() or None
    _check_lengths({"address_string": address, "address_id": address_id, "media_url": media_url}, fmt)
    now = context.clock()
    call_id = f"o311-{now.astimezone(CITY_TZ):%Y%m%d}-{secrets.token_hex(6)}"
    text = description + (f"\n地址：{address}" if address else "")
    try:
        transcript = HotlineTranscript(
            call_id=call_id, received_at=now, channel=Channel.APP, text=text,
            caller_phone=form.get("phone") or None, district_hint=form.get("attribute[district]") or None)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise Open311Error(400, f"request refused: {problems}", fmt) from None
    record = Open311Request(
        service_request_id=call_id, service_code=service_code, description=transcript.text,
        address_string=address or address_id, lat=lat, long=long,
        media_url=media_url, submitted_by=principal.actor,
        requested_at=now)
    with context.store.session() as session, session.begin():
        session.add(record)
        session.flush()
        context.transport.publish(Topic.TRANSCRIPTS, transcript)  # before the commit: no record without its call
    answer: dict[str, Any] = {"service_request_id": call_id,
                              "service_notice": "已受理：正在分类派单 (received; being classified and dispatched)"}
    if form.get("account_id"):
        answer["account_id"] = form["account_id"]
    return _render(fmt, "service_requests", [answer])


def _check_characters(form: dict[str, str], fmt: str) -> None:
    """Refuse what no XML answer could carry back (control characters XML 1.0 forbids, unpaired surrogates)."""
    for name, value in form.items():
        if found := XML_FORBIDDEN.search(value):
            raise Open311Error(400, f"{name} contains the character U+{ord(found.group()):04X}, which is not "
                                    "allowed (control characters other than tab and newline)", fmt)



# where each filed field is kept: longer values are refused up front (PostgreSQL would refuse them at the insert)
STORED_LENGTHS = {"address_string": column_length(Open311Request.__table__.c.address_string),
                  "address_id": column_length(Open311Request.__table__.c.address_string),
                  "media_url": column_length(Open311Request.__table__.c.media_url)}


def _check_lengths(values: dict[str, str | None], fmt: str) -> None:
    for name, value in values.items():
        if value is not None and len(value) > STORED_LENGTHS[name]:
            raise Open311Error(400, f"{name} is too long: {len(value)} characters, at most "
                                    f"{STORED_LENGTHS[name]}", fmt)


@router.get("/tokens/{token}.{fmt}", summary="The service_request_id behind a token")
def token(request: Request, token: str, fmt: str) -> Response:
    fmt = _format(fmt)
    context = _context(request)
    _caller(context, request, request.query_params.get("api_key"), fmt)
    with context.store.session() as session:
        known = session.get(Open311Request, token) is not None
    if not known:
        raise Open311Error(404, f"unknown token {token!r}", fmt)
    return _render(fmt, "service_requests", [{"token": token, "service_request_id": token}])


# ---- reading ------------------------------------------------------------------------------------------------------
@router.get("/requests.{fmt}", summary="Query service requests")
def query_requests(request: Request, fmt: str) -> Response:
    """Tickets as requests, newest first, plus requests filed here that the pipeline has not ticketed yet.
    service_request_id overrides every other argument (GeoReport v2); a department still sees only its own."""
    fmt = _format(fmt)
    params = request.query_params
    context = _context(request)
    principal = _caller(context, request, params.get("api_key"), fmt)
    query = select(Ticket).order_by(Ticket.created_at.desc(), Ticket.id)
    # filed here, not ticketed yet: open, and no department's yet
    ticketed = exists().where(Ticket.source_event_id == literal("call:").concat(Open311Request.service_request_id))
    unticketed = select(Open311Request).where(~ticketed)
    pending: Select[Open311Request] | None
    if ids := _listed(params.get("service_request_id")):
        query = query.where(Ticket.source_event_id.in_([f"call:{i}" for i in ids]) | Ticket.id.in_(ids))
        pending = unticketed.where(Open311Request.service_request_id.in_(ids))
    else:
        query, pending = _filtered(query, unticketed, params, context.clock(), fmt)
    if principal.role is Role.DEPARTMENT:
        query = query.where(Ticket.department == principal.department)
        pending = None
    with context.store.session() as session:
        found = [_pending_request(r) for r in session.scalars(
            pending.order_by(Open311Request.requested_at.desc()).limit(MAX_RESULTS))] if pending is not None else []
        found += [_as_request(session, t) for t in session.scalars(query.limit(MAX_RESULTS - len(found)))]
    return _render(fmt, "service_requests", found)


def _listed(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _filtered(query: Select[Ticket], pending: Select[Open311Request], params: Mapping[str, str], now: datetime,
              fmt: str) -> tuple[Select[Ticket], Select[Open311Request] | None]:
    """The date window, service_code and status filters; no pending requests when only closed ones are asked."""
    end = _date(params.get("end_date"), "end_date", fmt)
    start = _date(params.get("start_date"), "start_date", fmt) or (end or now) - DEFAULT_WINDOW
    query = query.where(Ticket.created_at >= start)
    pending = pending.where(Open311Request.requested_at >= start)
    if end is not None:
        query = query.where(Ticket.created_at <= end)
        pending = pending.where(Open311Request.requested_at <= end)
    if codes := _listed(params.get("service_code")):
        if unknown := [c for c in codes if c not in SERVICES_BY_CODE]:
            raise Open311Error(400, f"unknown service_code {', '.join(unknown)}", fmt)
        query = query.where(Ticket.category.in_([c for code in codes for c in SERVICES_BY_CODE[code].categories]))
        pending = pending.where(Open311Request.service_code.in_(codes))
    wanted = set(_listed(params.get("status")))
    if not wanted <= {"open", "closed"}:
        raise Open311Error(400, "status is open or closed", fmt)
    closed = [s.value for s in CLOSED_STATUSES]
    if wanted == {"open"}:
        return query.where(Ticket.status.not_in(closed)), pending
    if wanted == {"closed"}:
        return query.where(Ticket.status.in_(closed)), None
    return query, pending


@router.get("/requests/{service_request_id}.{fmt}", summary="One service request")
def get_request(request: Request, service_request_id: str, fmt: str) -> Response:
    fmt = _format(fmt)
    context = _context(request)
    principal = _caller(context, request, request.query_params.get("api_key"), fmt)
    with context.store.session() as session:
        ticket = session.scalars(select(Ticket).where(
            Ticket.source_event_id == f"call:{service_request_id}")).first() or session.get(Ticket, service_request_id)
        if ticket is not None and (principal.role is not Role.DEPARTMENT or ticket.department == principal.department):
            return _render(fmt, "service_requests", [_as_request(session, ticket)])
        pending = session.get(Open311Request, service_request_id)
        if ticket is None and pending is not None and principal.role is not Role.DEPARTMENT:
            return _render(fmt, "service_requests", [_pending_request(pending)])
    raise Open311Error(404, f"no service request {service_request_id!r}", fmt)


# ---- mapping ------------------------------------------------------------------------------------------------------
def request_id(ticket: Ticket) -> str:
    return ticket.source_event_id.removeprefix("call:") if ticket.source_event_id.startswith("call:") else ticket.id


def _as_request(session: Any, ticket: Ticket) -> dict[str, Any]:
    filed = session.get(Open311Request, request_id(ticket)) if ticket.source_event_id.startswith("call:") else None
    service = SERVICE_BY_CATEGORY.get(ticket.category or "") or (
        SERVICES_BY_CODE.get(filed.service_code) if filed is not None else None)
    status = TicketStatus(ticket.status)
    return {
        "service_request_id": request_id(ticket),
        "status": "closed" if status in CLOSED_STATUSES else "open",
        "status_notes": _status_notes(session, ticket),
        "service_name": service.name if service else ticket.category,
        "service_code": service.code if service else ticket.category,
        "description": ticket.description,
        "agency_responsible": ticket.department,
        "service_notice": None,
        "requested_datetime": _iso(ticket.created_at),
        "updated_datetime": _iso(ticket.updated_at),
        "expected_datetime": _iso(ticket.deadline_at),
        "address": ticket.address or (filed.address_string if filed else None),
        "address_id": None,
        "zipcode": None,
        "lat": filed.lat if filed else None,
        "long": filed.long if filed else None,
        "media_url": filed.media_url if filed else None,
    }


def _pending_request(filed: Open311Request) -> dict[str, Any]:
    service = SERVICES_BY_CODE.get(filed.service_code)
    return {
        "service_request_id": filed.service_request_id, "status": "open",
        "status_notes": "已受理，正在分类派单 (received; being classified and dispatched)",
        "service_name": service.name if service else filed.service_code, "service_code": filed.service_code,
        "description": filed.description, "agency_responsible": None, "service_notice": None,
        "requested_datetime": _iso(filed.requested_at), "updated_datetime": _iso(filed.requested_at),
        "expected_datetime": None, "address": filed.address_string, "address_id": None, "zipcode": None,
        "lat": filed.lat, "long": filed.long, "media_url": filed.media_url,
    }


def _status_notes(session: Any, ticket: Ticket) -> str:
    department = ticket.department or "-"
    match TicketStatus(ticket.status):
        case TicketStatus.PENDING_MANUAL:
            return "待人工派单 (awaiting manual dispatch)"
        case TicketStatus.DISPATCHED:
            return f"已派单至{department} (dispatched)"
        case TicketStatus.ACCEPTED:
            return f"{department}已签收 (accepted)"
        case TicketStatus.RETURNED:
            return "退单重派中 (being dispatched again)"
        case TicketStatus.IN_PROGRESS:
            return f"{department}办理中 (in progress)"
        case TicketStatus.RESOLVED:
            return f"已办结 (resolved): {ticket.resolution_note or ''}".rstrip(": ")
        case TicketStatus.VERIFIED:
            return f"已回访，市民满意 (verified): {ticket.resolution_note or ''}".rstrip(": ")
        case TicketStatus.CLOSED:
            return f"已结案 (closed): {ticket.resolution_note or ''}".rstrip(": ")
        case TicketStatus.MERGED:
            parent = session.get(Ticket, ticket.parent_ticket_id) if ticket.parent_ticket_id else None
            of = request_id(parent) if parent is not None else ticket.parent_ticket_id
            return f"重复诉求，已并入 {of} (duplicate of {of})"
    return ticket.status


# ---- plumbing -----------------------------------------------------------------------------------------------------
def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Open311Error(404, f"unknown format {fmt!r}: json or xml", "json")
    return fmt


def _caller(context: ApiContext, request: Request, api_key: str | None, fmt: str) -> Principal:
    token = api_key or ""
    header = request.headers.get("authorization", "")
    if not token and header.lower().startswith("bearer "):
        token = header[7:].strip()
    if not token:
        raise Open311Error(401, "api_key is required", fmt)
    principal = authenticate(context.store, token)
    if principal is None:
        raise Open311Error(403, "invalid or revoked api_key", fmt)
    return principal


async def _form(request: Request, fmt: str) -> dict[str, str]:
    """The POST parameters: form-urlencoded as the spec has it (JSON accepted too), query string merged."""
    body = await request.body()
    fields: dict[str, str] = dict(request.query_params)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "application/json":
            parsed = json.loads(body or b"{}")
            if not isinstance(parsed, dict):
                raise ValueError("not an object")
            fields |= {str(k): "" if v is None else str(v) for k, v in parsed.items()}
        elif content_type in ("application/x-www-form-urlencoded", ""):
            fields |= {k: v[-1] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
        else:
            raise Open311Error(400, f"unsupported content type {content_type!r}: use "
                                    "application/x-www-form-urlencoded", fmt)
    except (ValueError, UnicodeDecodeError) as error:
        raise Open311Error(400, f"unreadable request body: {error}", fmt) from None
    return fields


def _coordinate(value: str | None, name: str, bound: float, fmt: str) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        raise Open311Error(400, f"{name} is not a number: {value!r}", fmt) from None
    if not -bound <= number <= bound:
        raise Open311Error(400, f"{name} out of range: {number}", fmt)
    return number


def _date(value: str | None, name: str, fmt: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(400, f"{name} is not an ISO 8601 date: {value!r}", fmt) from None
    return city_time(moment)


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment).isoformat(timespec="seconds")


def _render(fmt: str, root: str, value: Any, status: int = 200) -> Response:
    if fmt == "json":
        return JSONResponse(value, status_code=status)
    element = ET.Element(root)
    _fill(element, root, value)
    body = ET.tostring(element, encoding="utf-8", xml_declaration=True)
    return Response(body, status_code=status, media_type="application/xml")


def _fill(element: ET.Element, name: str, value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _fill(ET.SubElement(element, key), key, item)
    elif isinstance(value, list | tuple):
        child = XML_LISTS.get(name, "item")
        for item in value:
            _fill(ET.SubElement(element, child), child, item)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = XML_FORBIDDEN.sub("\ufffd", str(value))  # calls from other channels may hold them
