"""on PostgreSQL, notify when a customer's standing for checks changes

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 22:40:00

Each worker keeps the checks' reads in memory (app/entitlements/check_cache.py) and drops a
customer's the moment PostgreSQL tells it that a change to what a check reads has committed:
the customer, its subscriptions, usage counters, credit pools and lots, or any API key. The
triggers tell it, whichever code or process made the change (for the counters, Tollgate's
recording names the customers itself). SQLite has no notifications, and its checks are not
cached.
"""

from alembic import op


# revision identifiers, used by Alembic.
revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

CHANNEL = "tollgate_standing"
# Set (for its transaction) by Tollgate's recording when it has named the customers whose
# counters it changes (app/entitlements/check_cache.py: tell_counters_changed).
TOLD = "tollgate.counters_told"

# Notifications carry at most 8,000 bytes: ids go 500 to one ("c 12,15,..."), so a batch's
# thousand customers make two. PostgreSQL delivers them when the transaction commits, never
# before and never for one rolled back.
FUNCTIONS = f"""
CREATE FUNCTION tollgate_notify_customers(ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    part text;
BEGIN
    FOR part IN
        SELECT 'c ' || string_agg(id::text, ',')
        FROM (
            SELECT id, (row_number() OVER (ORDER BY id) - 1) / 500 AS chunk
            FROM (SELECT DISTINCT unnest(ids) AS id) AS distinct_ids
            WHERE id IS NOT NULL
        ) AS numbered
        GROUP BY chunk
    LOOP
        PERFORM pg_notify('{CHANNEL}', part);
    END LOOP;
END
$$;

CREATE FUNCTION tollgate_changed_by_customer_id() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tollgate_notify_customers(ARRAY(SELECT customer_id FROM changed));
    RETURN NULL;
END
$$;

CREATE FUNCTION tollgate_changed_customers() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tollgate_notify_customers(ARRAY(SELECT id FROM changed));
    RETURN NULL;
END
$$;

CREATE FUNCTION tollgate_changed_credit_lots() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tollgate_notify_customers(ARRAY(
        SELECT pools.customer_id FROM changed JOIN credit_pools AS pools ON pools.id = changed.pool_id
    ));
    RETURN NULL;
END
$$;

CREATE FUNCTION tollgate_changed_counters() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('{TOLD}', true) IS DISTINCT FROM 'on' THEN
        PERFORM pg_notify('{CHANNEL}', '*');
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION tollgate_changed_api_keys() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', '*');
    RETURN NULL;
END
$$;
"""

# table -> the function that names the customers its changed rows belong to
TABLES = {
    "customers": "tollgate_changed_customers",
    "subscriptions": "tollgate_changed_by_customer_id",
    "credit_pools": "tollgate_changed_by_customer_id",
    "credit_lots": "tollgate_changed_credit_lots",
}


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTIONS)
    for table, function in TABLES.items():
        # One trigger per kind of change: a trigger with transition tables takes one event.
        # customer_id never changes on these tables, so an update's new rows name them all.
        for event, transition in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
            op.execute(
                f"CREATE TRIGGER {table}_{event.lower()}_notifies AFTER {event} ON {table} "
                f"REFERENCING {transition} TABLE AS changed "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )
    # The counters change with every event. Transition tables made their upsert take half as
    # long again (7 ms against 11 for a batch's 950 rows), so Tollgate's recording names the
    # customers itself, in the same transaction; a change from anywhere else drops everything.
    op.execute(
        "CREATE TRIGGER usage_counters_changed_notifies"
        " AFTER INSERT OR UPDATE OR DELETE ON usage_counters"
        " FOR EACH STATEMENT EXECUTE FUNCTION tollgate_changed_counters()"
    )
    # A new key changes no cached check; a revoked or deleted one drops them all.
    op.execute(
        "CREATE TRIGGER api_keys_changed_notifies AFTER UPDATE OR DELETE ON api_keys "
        "FOR EACH STATEMENT EXECUTE FUNCTION tollgate_changed_api_keys()"
    )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER api_keys_changed_notifies ON api_keys")
    op.execute("DROP TRIGGER usage_counters_changed_notifies ON usage_counters")
    for table in TABLES:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER {table}_{event}_notifies ON {table}")
    for function in (
        "tollgate_changed_api_keys",
        "tollgate_changed_counters",
        "tollgate_changed_credit_lots",
        "tollgate_changed_customers",
        "tollgate_changed_by_customer_id",
    ):
        op.execute(f"DROP FUNCTION {function}()")
    op.execute("DROP FUNCTION tollgate_notify_customers(bigint[])")
