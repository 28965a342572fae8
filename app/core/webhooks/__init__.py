"""Webhooks: a tenant's hooks, the outbox of deliveries written with each transition, and the
rules of who may be called (no private addresses unless the operator allows them)."""
