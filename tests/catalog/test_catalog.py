"""The plan catalog: the example loads, and each kind of mistake is named by plan and field."""

from __future__ import annotations

import copy
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from app import create_app
from app.catalog import CatalogError, load_catalog
from app.catalog.loader import parse_catalog
from app.config import REPO_ROOT
from tests.apps import app_config

EXAMPLE = tomllib.loads((REPO_ROOT / "plans.toml").read_text())


def test_example_catalog_has_every_concept_of_the_design() -> None:
    catalog = load_catalog(REPO_ROOT / "plans.toml")
    for key in ("free", "starter_monthly", "pro_monthly", "pro_yearly", "enterprise_monthly"):
        assert key in catalog.plans
    plans = catalog.plans.values()
    allowances = [a for p in plans for a in p.features.values() if not isinstance(a, bool)]
    assert {p.billing for p in plans} == {"in_advance", "in_arrears"}
    assert any(p.trial_days and not p.trial_requires_card for p in plans)
    assert any(p.trial_days and p.trial_requires_card for p in plans)
    assert any(a.limit for a in allowances)
    assert any(a.billable_overage for a in allowances)
    assert any(grant is True for p in plans for grant in p.features.values())
    policies = {credit.rollover for p in plans for credit in p.credits}
    assert policies == {"none", "full", "capped", "expire"}


def _broken(change: Any) -> dict[str, Any]:
    raw = copy.deepcopy(EXAMPLE)
    change(raw)
    return raw


MISTAKES = [
    pytest.param(
        lambda raw: raw["plans"]["pro_monthly"].update(price=-100),
        "plan 'pro_monthly', field 'price': Input should be greater than or equal to 0",
        id="negative-price",
    ),
    pytest.param(
        lambda raw: raw["plans"]["pro_monthly"].update(price="49"),
        "plan 'pro_monthly', field 'price': Input should be a valid integer",
        id="price-as-text",
    ),
    pytest.param(
        lambda raw: raw["plans"]["pro_monthly"].update(interval="week"),
        "plan 'pro_monthly', field 'interval': Input should be 'month' or 'year'",
        id="unknown-interval",
    ),
    pytest.param(
        lambda raw: raw["plans"]["pro_monthly"].update(billing="later"),
        "plan 'pro_monthly', field 'billing'",
        id="unknown-billing",
    ),
    pytest.param(
        lambda raw: raw["plans"]["pro_monthly"].pop("name"),
        "plan 'pro_monthly', field 'name': Field required",
        id="missing-name",
    ),
    pytest.param(
        lambda raw: raw["plans"]["pro_monthly"].update(trail_days=14),
        "plan 'pro_monthly', field 'trail_days': Extra inputs are not permitted",
        id="misspelt-field",
    ),
    pytest.param(
        lambda raw: raw["plans"]["pro_monthly"].update(trial_days=1000),
        "plan 'pro_monthly', field 'trial_days': Input should be less than or equal to 730",
        id="trial-too-long",
    ),
    pytest.param(
        lambda raw: raw["plans"]["free"].update(trial_days=7),
        "plan 'free', field 'trial_days': a free plan has no trial",
        id="trial-on-free-plan",
    ),
    pytest.param(
        lambda raw: raw["plans"]["pro_monthly"].update(currency="dollars"),
        "plan 'pro_monthly', field 'currency': String should match pattern",
        id="bad-currency",
    ),
    pytest.param(
        lambda raw: raw["plans"]["pro_monthly"].update(tier="platinum"),
        "plan 'pro_monthly', field 'tier': unknown tier 'platinum'",
        id="unknown-tier",
    ),
    pytest.param(
        lambda raw: raw["plans"]["pro_monthly"]["features"].update(teleport=True),
        "plan 'pro_monthly', field 'features.teleport': unknown feature 'teleport'",
        id="unknown-feature",
    ),
    pytest.param(
        lambda raw: raw["plans"]["pro_monthly"]["features"].update(sso={"included": 3}),
        "plan 'pro_monthly', field 'features.sso': 'sso' is a boolean feature",
        id="boolean-feature-given-allowance",
    ),
    pytest.param(
        lambda raw: raw["plans"]["pro_monthly"]["features"].update(api_calls=True),
        "plan 'pro_monthly', field 'features.api_calls': 'api_calls' is metered",
        id="metered-feature-given-boolean",
    ),
    pytest.param(
        lambda raw: raw["plans"]["free"]["features"].update(api_calls={"limit": 10}),
        "plan 'free', field 'features.api_calls': nothing covers its use",
        id="metered-feature-uncovered",
    ),
    pytest.param(
        lambda raw: raw["plans"]["free"]["features"].update(
            api_calls={"included": 100, "limit": 10}
        ),
        "plan 'free', field 'features.api_calls': included units exceed the hard limit",
        id="included-over-limit",
    ),
    pytest.param(
        lambda raw: raw["plans"]["enterprise_monthly"]["features"].update(
            api_calls={"unlimited": True, "limit": 5}
        ),
        "plan 'enterprise_monthly', field 'features.api_calls': an unlimited feature",
        id="unlimited-with-limit",
    ),
    pytest.param(
        lambda raw: raw["plans"]["pro_monthly"]["features"].update(
            api_calls={"included": 10, "overage_price": 0}
        ),
        "field 'features.api_calls.overage_price': Input should be greater than 0",
        id="zero-overage-price",
    ),
    pytest.param(
        lambda raw: raw["plans"]["pro_monthly"]["credits"][0].update(amount=0),
        "plan 'pro_monthly', field 'credits.0.amount': Input should be greater than 0",
        id="zero-credit-grant",
    ),
    pytest.param(
        lambda raw: raw["plans"]["pro_monthly"]["credits"][0].pop("rollover_cap"),
        "plan 'pro_monthly', field 'credits[0].rollover_cap': rollover_cap goes with",
        id="capped-rollover-without-cap",
    ),
    pytest.param(
        lambda raw: raw["plans"]["enterprise_monthly"]["credits"][0].pop("expire_after_periods"),
        "plan 'enterprise_monthly', field 'credits[0].expire_after_periods'",
        id="expiring-rollover-without-periods",
    ),
    pytest.param(
        lambda raw: raw["plans"]["pro_monthly"]["credits"][0].update(rollover="forever"),
        "plan 'pro_monthly', field 'credits.0.rollover'",
        id="unknown-rollover-policy",
    ),
    pytest.param(
        lambda raw: raw["plans"]["pro_monthly"]["credits"][0].update(features=["sso"]),
        "plan 'pro_monthly', field 'credits[0].features': 'sso' is not a metered feature",
        id="credits-for-boolean-feature",
    ),
    pytest.param(
        lambda raw: raw["plans"]["pro_monthly"]["credits"].append(
            dict(raw["plans"]["pro_monthly"]["credits"][0])
        ),
        "plan 'pro_monthly', field 'credits[1].pool': pool 'ai_tokens' is granted twice",
        id="pool-granted-twice",
    ),
    pytest.param(
        lambda raw: raw["plans"]["pro_monthly"].update(margin_floor=Decimal("1.2")),
        "plan 'pro_monthly', field 'margin_floor': Input should be less than 1",
        id="margin-floor-above-one",
    ),
    pytest.param(
        lambda raw: raw["plans"]["pro_monthly"].update(margin_floor_action="refund"),
        "plan 'pro_monthly', field 'margin_floor_action': Input should be 'alert' or 'bill'",
        id="unknown-margin-floor-action",
    ),
    pytest.param(
        lambda raw: raw["plans"]["free"].update(
            margin_floor=Decimal("0.5"), margin_floor_action="bill"
        ),
        "plan 'free', field 'margin_floor_action': a free plan has no invoice to bill",
        id="free-plan-billing-its-floor",
    ),
    pytest.param(
        lambda raw: raw["plans"].update({"Pro Plan": dict(raw["plans"]["pro_monthly"])}),
        "plan 'Pro Plan', field 'key': String should match pattern",
        id="bad-plan-key",
    ),
    pytest.param(
        lambda raw: raw.update(plans={}),
        "field 'plans': Dictionary should have at least 1 item",
        id="no-plans",
    ),
]


@pytest.mark.parametrize(("change", "message"), MISTAKES)
def test_catalog_mistake_is_named_by_plan_and_field(change: Any, message: str) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(_broken(change))
    assert message in str(caught.value)


def test_catalog_that_is_not_toml_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "plans.toml"
    bad.write_text('currency = "usd"\n[plans.free\nname = "Free"\n')
    with pytest.raises(CatalogError, match=r"not valid TOML: .*line 2"):
        load_catalog(bad)


def test_missing_catalog_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="the plan catalog file does not exist"):
        load_catalog(tmp_path / "nope.toml")


def test_bad_catalog_stops_start_up(tmp_path: Path) -> None:
    bad = tmp_path / "plans.toml"
    bad.write_text((REPO_ROOT / "plans.toml").read_text().replace("price = 4_900", "price = -1"))
    config = app_config(f"sqlite:///{tmp_path / 'db.sqlite3'}", TOLLGATE_PLANS=str(bad))
    with pytest.raises(CatalogError, match="plan 'pro_monthly', field 'price'"):
        create_app(config)


def test_catalog_show_prints_every_plan_in_words(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TOLLGATE_INSTANCE_PATH", str(tmp_path))
    app = create_app(app_config(f"sqlite:///{tmp_path / 'db.sqlite3'}"))
    result = CliRunner().invoke(app.cli, ["catalog", "show"])
    assert result.exit_code == 0, result.output
    assert "pro_monthly  (Pro, tier pro)" in result.output
    assert "$49 / month" in result.output
    assert "14-day free trial" in result.output
    assert "up to 500,000 unused tokens roll over" in result.output
    assert "Starts at once; invoiced at the end of each month" in result.output
