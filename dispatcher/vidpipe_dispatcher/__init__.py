"""The webhook dispatcher: delivers the event log to tenants' endpoints (docs/webhooks.md)."""
