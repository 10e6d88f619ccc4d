"""Reading the audit log (admins): who did what, when, from where."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, Field
from quart import jsonify

from ..audit import AuditQuery, event_json
from ..context import get_context
from . import api
from .guard import QueryModel, caller, query, read_query, remote_addr, require, responds
from .schemas import AuditPageOut

MAX_PAGE = 500


class AuditFilter(QueryModel):
    """Query of ``GET /api/v1/audit``: every filter optional, newest events first."""

    actor: str | None = Field(None, max_length=150, description="User name of who acted.")
    action: str | None = Field(None, max_length=80, description="An action, or a family of them: "
                                                                "`camera.live` also finds `camera.live.open`.")
    target_type: str | None = Field(None, max_length=40, description="`camera`, `recording`, `user`, ...")
    target_id: str | None = Field(None, max_length=64)
    since: AwareDatetime | None = Field(None, description="Events at or after this time (ISO 8601 with zone).")
    until: AwareDatetime | None = Field(None, description="Events before this time.")
    before_id: int | None = Field(None, ge=1, le=2**63 - 1, description="Page: events older than this id "
                                                                         "(the `next_before_id` of the last page).")
    limit: int = Field(100, ge=1, le=MAX_PAGE)


@api.get("/audit")
@require("audit.view")
@query(AuditFilter)
@responds(200, AuditPageOut, description="A page of events, newest first, and where the next page starts.")
async def list_audit_events():
    """Audit events, newest first, filtered and paged (``next_before_id`` is null on the last page).

    Reading the audit log is itself audited.
    """
    ctx = get_context()
    f = read_query(AuditFilter)
    q = AuditQuery(actor=f.actor, action=f.action, target_type=f.target_type, target_id=f.target_id,
                   since=f.since, until=f.until, before_id=f.before_id, limit=f.limit + 1)
    events = await ctx.audit.events(q)
    page, more = events[:f.limit], len(events) > f.limit
    await ctx.audit.record("audit.read", actor=caller().user, remote_addr=remote_addr(),
                           detail={k: (v.isoformat() if isinstance(v, datetime) else v)
                                   for k, v in f.model_dump(exclude_none=True).items()})
    return jsonify({"events": [event_json(e) for e in page],
                    "next_before_id": page[-1].id if more and page else None})
