"""The caller's webhook endpoints: register, list, change, delete, rotate the secret; their
delivery log, a manual retry and a replay from a point in time (issue 14, docs/webhooks.md).

The dispatcher does the delivering; these routes only write what it reads (endpoints, pending
deliveries). Secrets appear in the answer of a create or a rotation and nowhere else.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from vidpipe.events import (
    DEFAULT_EVENT_TYPES,
    DeliveryState,
    EventType,
    WebhookEndpoint,
    WebhookSecret,
)
from vidpipe.webhooks import new_secret, new_webhook_id
from vidpipe_api.db import now
from vidpipe_api.deps import CurrentOwner, SettingsDep, WebhookDep, WebhookStoreDep
from vidpipe_api.errors import (
    DatabaseUnavailable,
    DeliveryInProgress,
    DeliveryNotFound,
    InvalidRequest,
    WebhookDisabled,
    WebhookLimitReached,
    WebhookNotFound,
)
from vidpipe_api.pagination import Cursor, decode_cursor, encode_cursor
from vidpipe_api.schemas import ERROR_RESPONSES, ErrorOut
from vidpipe_api.webhook_schemas import (
    DeliveryList,
    DeliveryOut,
    ReplayIn,
    ReplayOut,
    RotateIn,
    WebhookIn,
    WebhookList,
    WebhookOut,
    WebhookPatch,
    WebhookWithSecret,
)
from vidpipe_api.webhooks import check_url, to_ms

router = APIRouter(tags=["webhooks"])

# Why an endpoint is off when its owner switched it off (the dispatcher writes its own reasons).
OWNER_DISABLED = "disabled by the owner"
# Delivery ids are `<event id>.<webhook id>`, about 80 characters.
ID_MAX = 200
# A rotation re-reads and retries when the endpoint changed between its read and its write.
ROTATE_TRIES = 5

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such webhook (or delivery) for this caller"}
}
REFUSED: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorOut, "description": "`webhook_url_refused` or `validation_failed`"}
}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": ErrorOut}}

DeliveryPath = Annotated[str, Path(max_length=ID_MAX, description="Delivery id")]


def _event_types(types: list[EventType] | None) -> list[EventType]:
    return sorted(set(types) if types else DEFAULT_EVENT_TYPES)


@router.post(
    "/v1/webhooks",
    status_code=201,
    response_model=WebhookWithSecret,
    responses={**ERROR_RESPONSES, **REFUSED, **CONFLICT},
)
async def create_webhook(
    body: WebhookIn,
    owner: CurrentOwner,
    store: WebhookStoreDep,
    settings: SettingsDep,
    response: Response,
) -> WebhookWithSecret:
    """Register an endpoint; the answer holds its signing secret, shown this once.

    Refused (`webhook_url_refused`): other schemes than https/http, credentials in the URL,
    loopback, private, link-local (metadata) and other non-public IP literals, and local or
    cluster-internal names, unless the server's allow-list names them. At most
    `webhook_max_per_owner` endpoints per caller (`webhook_limit_reached`).
    """
    url = check_url(body.url, settings.webhook_allowed_hosts)
    if await store.count(owner) >= settings.webhook_max_per_owner:
        raise WebhookLimitReached(settings.webhook_max_per_owner)
    at = now()
    secret = new_secret()
    endpoint = WebhookEndpoint(
        id=new_webhook_id(),
        owner=owner,
        url=url,
        event_types=_event_types(body.eventTypes),
        enabled=body.enabled,
        description=body.description,
        secrets=[WebhookSecret(value=secret, created_at=at)],
        created_at=at,
        updated_at=at,
        disabled_reason=None if body.enabled else OWNER_DISABLED,
    )
    await store.insert(endpoint)
    response.headers["Location"] = f"/v1/webhooks/{endpoint.id}"
    return WebhookWithSecret.with_secret(endpoint, secret)


@router.get("/v1/webhooks", response_model=WebhookList, responses=ERROR_RESPONSES)
async def list_webhooks(owner: CurrentOwner, store: WebhookStoreDep) -> WebhookList:
    """The caller's endpoints, newest first (no secrets)."""
    return WebhookList(items=[WebhookOut.of(e) for e in await store.list_endpoints(owner)])


@router.get(
    "/v1/webhooks/{webhook_id}",
    response_model=WebhookOut,
    responses={**ERROR_RESPONSES, **NOT_FOUND},
)
async def get_webhook(webhook: WebhookDep) -> WebhookOut:
    """One endpoint: URL, event types, state, failure streak and the secrets' dates."""
    return WebhookOut.of(webhook)


@router.patch(
    "/v1/webhooks/{webhook_id}",
    response_model=WebhookOut,
    responses={**ERROR_RESPONSES, **NOT_FOUND, **REFUSED},
)
async def update_webhook(
    body: WebhookPatch, webhook: WebhookDep, store: WebhookStoreDep, settings: SettingsDep
) -> WebhookOut:
    """Change the URL, event types, description or `enabled`; re-enabling clears the reason it
    was disabled and its failure streak."""
    fields: dict[str, Any] = {"updated_at": now()}
    if body.url is not None:
        fields["url"] = check_url(body.url, settings.webhook_allowed_hosts)
    if body.eventTypes is not None:
        fields["event_types"] = [t.value for t in _event_types(body.eventTypes)]
    if body.description is not None:
        fields["description"] = body.description
    if body.enabled is True:
        fields.update(enabled=True, disabled_reason=None, failure_streak=0)
    elif body.enabled is False and webhook.enabled:
        fields.update(enabled=False, disabled_reason=OWNER_DISABLED)
    updated = await store.update(webhook.owner, webhook.id, fields)
    if updated is None:
        raise WebhookNotFound(webhook.id)
    return WebhookOut.of(updated)


@router.delete(
    "/v1/webhooks/{webhook_id}", status_code=204, responses={**ERROR_RESPONSES, **NOT_FOUND}
)
async def delete_webhook(webhook: WebhookDep, store: WebhookStoreDep) -> Response:
    """Delete the endpoint and its delivery log; nothing more is sent to it."""
    if not await store.delete(webhook.owner, webhook.id):
        raise WebhookNotFound(webhook.id)
    return Response(status_code=204)


@router.post(
    "/v1/webhooks/{webhook_id}/rotate-secret",
    response_model=WebhookWithSecret,
    responses={**ERROR_RESPONSES, **NOT_FOUND},
)
async def rotate_secret(
    webhook: WebhookDep,
    store: WebhookStoreDep,
    settings: SettingsDep,
    body: RotateIn | None = None,
) -> WebhookWithSecret:
    """A new signing secret, shown this once. The current one keeps signing next to it (two
    `v1,` signatures per delivery) until `graceSeconds` from now (default and maximum: the
    server's grace period), so receivers can switch without losing a delivery."""
    limit = settings.webhook_secret_grace_seconds
    asked = body.graceSeconds if body is not None else None
    grace = timedelta(seconds=limit if asked is None else min(asked, limit))
    endpoint: WebhookEndpoint | None = webhook
    for _ in range(ROTATE_TRIES):
        if endpoint is None:
            raise WebhookNotFound(webhook.id)
        at = now()
        ends = at + grace
        kept = [
            s.model_copy(update={"expires_at": min(s.expires_at or ends, ends)})
            for s in endpoint.secrets
            if s.expires_at is None or s.expires_at > at
        ]
        secret = new_secret()
        secrets = [*kept, WebhookSecret(value=secret, created_at=at)]
        if await store.swap_secrets(endpoint, secrets, at):
            rotated = endpoint.model_copy(update={"secrets": secrets, "updated_at": at})
            return WebhookWithSecret.with_secret(rotated, secret)
        endpoint = await store.get(webhook.owner, webhook.id)
    raise DatabaseUnavailable("the endpoint kept changing during the rotation; retry")


@router.get(
    "/v1/webhooks/{webhook_id}/deliveries",
    response_model=DeliveryList,
    responses={**ERROR_RESPONSES, **NOT_FOUND},
)
async def list_deliveries(
    webhook: WebhookDep,
    store: WebhookStoreDep,
    state: Annotated[list[DeliveryState] | None, Query(description="Only these states")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512, description="From `nextCursor`")] = None,
) -> DeliveryList:
    """The endpoint's deliveries, newest first: state, attempts (time, status code, latency,
    error), when the next attempt is due."""
    after = decode_cursor(cursor, max_id=ID_MAX) if cursor else None
    found = await store.list_deliveries(webhook, states=state or [], after=after, limit=limit + 1)
    page = found[:limit]
    types = await store.event_types(webhook.owner, [d.event_id for d in page])
    last = page[-1] if page else None
    next_cursor = (
        encode_cursor(Cursor(to_ms(last.created_at), last.id))
        if last is not None and len(found) > limit
        else None
    )
    return DeliveryList(
        items=[DeliveryOut.of(d, types.get(d.event_id)) for d in page], nextCursor=next_cursor
    )


@router.post(
    "/v1/webhooks/{webhook_id}/deliveries/{delivery}/retry",
    status_code=202,
    response_model=DeliveryOut,
    responses={**ERROR_RESPONSES, **NOT_FOUND, **CONFLICT},
)
async def retry_delivery(
    delivery: DeliveryPath, webhook: WebhookDep, store: WebhookStoreDep
) -> DeliveryOut:
    """Queue the delivery again, due now (its attempts stay in the log). 409
    `delivery_in_progress` while a dispatcher is attempting it, `webhook_disabled` while the
    endpoint is off."""
    if not webhook.enabled:
        raise WebhookDisabled(webhook.id)
    if not await store.requeue(webhook, delivery, now()):
        if await store.get_delivery(webhook, delivery) is None:
            raise DeliveryNotFound(delivery)
        raise DeliveryInProgress(delivery)
    found = await store.get_delivery(webhook, delivery)
    if found is None:  # the endpoint was deleted in between
        raise DeliveryNotFound(delivery)
    types = await store.event_types(webhook.owner, [found.event_id])
    return DeliveryOut.of(found, types.get(found.event_id))


@router.post(
    "/v1/webhooks/{webhook_id}/replay",
    status_code=202,
    response_model=ReplayOut,
    responses={**ERROR_RESPONSES, **NOT_FOUND, **CONFLICT},
)
async def replay(
    body: ReplayIn, webhook: WebhookDep, store: WebhookStoreDep, settings: SettingsDep
) -> ReplayOut:
    """Send the caller's events of a time window to this endpoint again: a delivery, due now,
    for every event it receives that has none, and the failed, refused or disabled ones queued
    again. Succeeded and pending deliveries are left alone, so replaying twice sends nothing
    twice. `since` is moved forward to the event retention."""
    if not webhook.enabled:
        raise WebhookDisabled(webhook.id)
    at = now()
    since = max(body.since, at - timedelta(days=settings.event_retention_days))
    until = min(body.until or at, at)
    if until < since:
        raise InvalidRequest("`until` is before `since` (or before the event retention)")
    events, created, requeued, more = await store.replay(
        webhook,
        since=since,
        until=until,
        types=body.types or webhook.event_types,
        at=at,
        max_events=settings.webhook_replay_max_events,
    )
    return ReplayOut(
        events=events,
        created=created,
        requeued=requeued,
        since=since,
        until=until,
        nextSince=more,
    )
