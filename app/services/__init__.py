"""Rules live here: state transitions, lease claims, tenant scoping. Services never commit;
the caller owns the transaction."""
