"""Usage by file: `flask usage import` records each row or rejects it with its line and reason."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from app.entitlements.models import UsageEvent
from tests.entitlements.helpers import balance, count, reference_of
from tests.factories import new_subscriber


def test_usage_import_reports_every_row_and_is_safe_to_rerun(synced: Flask, tmp_path: Path) -> None:
    customer_id = new_subscriber(synced, "pro_monthly").id
    ref = reference_of(synced, customer_id)
    csv_file = tmp_path / "usage.csv"
    csv_file.write_text(
        "customer_reference_id,feature_key,units,idempotency_key,event_name,timestamp\n"
        f"{ref},ai_chat,1000,k1,chat,\n"
        f"{ref},api_calls,25,k2,call,2026-11-21T10:00:00+00:00\n"
        "nobody,ai_chat,10,k3,chat,\n"
        f"{ref},teleport,10,k4,chat,\n"
        f"{ref},ai_chat,ten,k5,chat,\n"
        f"{ref},ai_chat,2000,k1,chat,\n"
        f"{ref},ai_chat,5,k6,chat,2999-01-01T00:00:00+00:00\n"
    )
    runner = synced.test_cli_runner()

    first = runner.invoke(args=["usage", "import", str(csv_file)])
    assert first.exit_code == 0, first.output
    assert "2 recorded (0 already recorded before)." in first.output
    for line in [
        "line 4: unknown_customer:",
        "line 5: unknown_feature:",
        "line 6: invalid_units:",
        "line 7: idempotency_key_reused:",
        "line 8: invalid_timestamp:",
    ]:
        assert line in first.output
    assert "5 rejected." in first.output

    second = runner.invoke(args=["usage", "import", str(csv_file)])
    assert "2 recorded (2 already recorded before)." in second.output
    assert count(synced, UsageEvent) == 2
    assert balance(synced, customer_id) == 999_000


def test_usage_import_without_required_columns_fails_clearly(synced: Flask, tmp_path: Path) -> None:
    csv_file = tmp_path / "usage.csv"
    csv_file.write_text("customer,units\nx,1\n")
    result = synced.test_cli_runner().invoke(args=["usage", "import", str(csv_file)])
    assert result.exit_code != 0
    assert "no column customer_reference_id, feature_key, idempotency_key" in result.output
