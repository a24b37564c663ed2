"""`Annotated` dependency aliases, so routes declare what they need in one short parameter."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Request

from vidpipe.events import WebhookEndpoint
from vidpipe.record import JobRecord
from vidpipe_api import auth
from vidpipe_api.cluster import Cluster
from vidpipe_api.context import AppContext
from vidpipe_api.db import Database
from vidpipe_api.errors import JobNotFound, Unauthenticated, WebhookNotFound
from vidpipe_api.jobs import Ingest
from vidpipe_api.metrics import Metrics
from vidpipe_api.settings import Settings
from vidpipe_api.storage import Storage
from vidpipe_api.webhooks import WebhookStore


def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[AppContext, Depends(get_context)]


def get_settings(ctx: ContextDep) -> Settings:
    return ctx.settings


def get_storage(ctx: ContextDep) -> Storage:
    return ctx.storage


def get_db(ctx: ContextDep) -> Database:
    return ctx.db


def get_cluster(ctx: ContextDep) -> Cluster:
    return ctx.cluster


def get_ingest(ctx: ContextDep) -> Ingest:
    return ctx.ingest


def get_metrics(ctx: ContextDep) -> Metrics:
    return ctx.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
StorageDep = Annotated[Storage, Depends(get_storage)]
JobsRepoDep = Annotated[Database, Depends(get_db)]
ClusterDep = Annotated[Cluster, Depends(get_cluster)]
IngestDep = Annotated[Ingest, Depends(get_ingest)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


async def get_principal(
    db: JobsRepoDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> auth.Principal:
    """The caller, from `Authorization: Bearer <key>` or `X-API-Key`; never from the body."""
    key = auth.credential_from_headers(authorization, x_api_key)
    if key is None:
        raise Unauthenticated("send an API key as `Authorization: Bearer <key>` or `X-API-Key`")
    key_id = auth.key_id_of(key)
    if key_id is None:
        raise Unauthenticated()
    doc = await db.find_key(key_id)
    if doc is None or not auth.verify(key, str(doc.get("hash", ""))):
        raise Unauthenticated()
    return auth.Principal(owner=str(doc["owner"]), key_id=key_id, admin=bool(doc.get("admin")))


PrincipalDep = Annotated[auth.Principal, Depends(get_principal)]


def get_owner(principal: PrincipalDep) -> str:
    return principal.owner


CurrentOwner = Annotated[str, Depends(get_owner)]


JobIdPath = Annotated[
    str,
    Path(
        description="Job id as returned by the upload",
        max_length=63,
        examples=["vj-3f2b1c0d9e8f4a7b6c5d4e3f2a1b0c9d"],
    ),
]


async def get_job_record(job_id: JobIdPath, owner: CurrentOwner, db: JobsRepoDep) -> JobRecord:
    """The caller's job or 404: another owner's job is indistinguishable from a missing one."""
    record = await db.get_job(owner, job_id)
    if record is None:
        raise JobNotFound(job_id)
    return record


JobRecordDep = Annotated[JobRecord, Depends(get_job_record)]


def get_webhook_store(db: JobsRepoDep) -> WebhookStore:
    return WebhookStore(db)


WebhookStoreDep = Annotated[WebhookStore, Depends(get_webhook_store)]

WebhookIdPath = Annotated[
    str,
    Path(
        description="Webhook id as returned by its creation", max_length=64, examples=["wh_5f0c…"]
    ),
]


async def get_webhook(
    webhook_id: WebhookIdPath, owner: CurrentOwner, store: WebhookStoreDep
) -> WebhookEndpoint:
    """The caller's endpoint or 404, like jobs: another owner's is indistinguishable from none."""
    endpoint = await store.get(owner, webhook_id)
    if endpoint is None:
        raise WebhookNotFound(webhook_id)
    return endpoint


WebhookDep = Annotated[WebhookEndpoint, Depends(get_webhook)]
