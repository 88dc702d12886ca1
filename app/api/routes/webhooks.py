"""Webhooks (admin): receivers of the organisation's events, signed as Standard Webhooks."""

from fastapi import APIRouter, Response, status

from app.api.deps import Admin, Limit, Offset, SessionDep, StateDep, WebhookDep
from app.api.idempotency import Idempotent, IdempotentRoute
from app.schemas.common import error_responses
from app.schemas.webhooks import (
    DeliveriesRead,
    DeliveryRead,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhooksRead,
)
from app.services import audit
from app.services import webhooks as webhook_service

router = APIRouter(tags=["webhooks"], route_class=IdempotentRoute)


@router.post(
    "/webhooks",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    responses=error_responses(401, 403, 422),
)
def create_webhook(
    body: WebhookCreate,
    principal: Admin,
    _idempotency: Idempotent,
    session: SessionDep,
    state: StateDep,
    response: Response,
) -> WebhookCreated:
    """Subscribe a URL to events. The signing secret is in this response only (and in its
    replay to a retry with the same `Idempotency-Key`, for 24 h)."""
    settings = state.settings
    webhook = webhook_service.create_webhook(
        session,
        principal.organisation_id,
        body.url,
        body.events,
        webhook_service.UrlRules(settings.webhook_allow_http, settings.webhook_allow_private),
        principal.key_id,
    )
    audit.record(
        session,
        principal.organisation_id,
        "webhook.created",
        key_id=principal.key_id,
        object=f"/webhooks/{webhook.id}",
        figures={"events": len(webhook.events)},
    )
    response.headers["Location"] = f"/webhooks/{webhook.id}"
    return WebhookCreated(
        id=webhook.id,
        url=webhook.url,
        events=webhook.events,
        created_at=webhook.created_at,
        secret=webhook.secret,
    )


@router.get("/webhooks", response_model=WebhooksRead, responses=error_responses(401, 403))
def list_webhooks(principal: Admin, session: SessionDep) -> WebhooksRead:
    hooks = webhook_service.list_webhooks(session, principal.organisation_id)
    return WebhooksRead(data=[WebhookRead.model_validate(h) for h in hooks], count=len(hooks))


@router.get(
    "/webhooks/{webhook_id}",
    response_model=WebhookRead,
    responses=error_responses(401, 403, 404, 422),
)
def get_webhook(webhook: WebhookDep) -> WebhookRead:
    return WebhookRead.model_validate(webhook)


@router.delete(
    "/webhooks/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 422),
)
def delete_webhook(principal: Admin, webhook: WebhookDep, session: SessionDep) -> Response:
    """Unsubscribe: nothing more is sent, and the delivery history goes with it."""
    audit.record(
        session,
        principal.organisation_id,
        "webhook.deleted",
        key_id=principal.key_id,
        object=f"/webhooks/{webhook.id}",
    )
    webhook_service.delete_webhook(session, webhook)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=DeliveriesRead,
    responses=error_responses(401, 403, 404, 422),
)
def list_deliveries(
    webhook: WebhookDep, session: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> DeliveriesRead:
    """What was sent to the webhook, newest first: status, attempts, the last answer."""
    deliveries, total = webhook_service.list_deliveries(
        session, webhook, limit=limit, offset=offset
    )
    return DeliveriesRead(data=[DeliveryRead.model_validate(d) for d in deliveries], count=total)
