"""The money pages: disputes and refunds, geography, invoices and top customers, with figures
worked out by hand, their CSV downloads, and one journey through the sandbox end to end."""

from __future__ import annotations

import csv
import io
import itertools
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from flask import Flask
from sqlalchemy import event, select

from app.accounts.mirror import (
    Charge,
    Dispute,
    Invoice,
    Refund,
    Subscription,
    SubscriptionStatus,
)
from app.accounts.models import Customer
from app.billing.gateway import gateway
from app.clock import now
from app.entitlements.access import name_period
from app.entitlements.models import UsageCounter
from app.extensions import db
from app.stripe_sandbox import Sandbox
from tests.journeys import DAY, subscribe
from tests.web import WebClient, visible_text

MONEY_PAGES = [
    "/admin/disputes",
    "/admin/disputes?status=lost&format=csv&table=disputes",
    "/admin/geography?months=3",
    "/admin/invoices?q=ada&status=paid",
    "/admin/invoices?format=csv",
    "/admin/top?feature=ai_chat",
]
GB_CARD = "4000 0082 6000 0000"
DISPUTED_CARD = "4000 0000 0000 0259"
ids = itertools.count(1)


@pytest.mark.parametrize("page", MONEY_PAGES)
def test_an_anonymous_visitor_is_sent_to_log_in(client: WebClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 302
    assert response.headers["location"].startswith("/login?next=/admin/")


@pytest.mark.parametrize("page", MONEY_PAGES)
def test_a_customer_finds_nothing(logged_in: WebClient, page: str) -> None:
    assert logged_in.get(page).status_code == 404


@pytest.mark.parametrize("page", MONEY_PAGES)
def test_an_operator_sees_the_page(operator: WebClient, page: str) -> None:
    response = operator.get(page)
    assert response.status_code == 200
    if "format=csv" in page:
        assert response.headers["content-type"].startswith("text/csv")
    else:
        assert "Back office" in visible_text(response.text)


# Rows of the mirror, as the sync path leaves them, on dates a test chooses.


def month_day(months_back: int, day: int = 10) -> datetime:
    """Noon on ``day`` of the month ``months_back`` months before the app's clock's month."""
    today = now()
    index = today.year * 12 + today.month - 1 - months_back
    return datetime(index // 12, index % 12 + 1, day, 12, tzinfo=UTC)


def customer(email: str, country: str | None = None) -> Customer:
    made = Customer(
        reference_id=email.split("@")[0],
        email=email,
        country=country,
        stripe_customer_id=f"cus_{next(ids)}",
    )
    db.session.add(made)
    db.session.flush()
    return made


def charge(
    owner: Customer,
    amount: int,
    created: datetime,
    *,
    currency: str = "usd",
    refunded: int = 0,
    status: str = "succeeded",
    billing: str | None = None,
    card: str | None = None,
) -> Charge:
    made = Charge(
        stripe_charge_id=f"ch_{next(ids)}",
        customer_id=owner.id,
        amount=amount,
        amount_refunded=refunded,
        currency=currency,
        status=status,
        disputed=False,
        billing_country=billing,
        card_country=card,
        created=created,
    )
    db.session.add(made)
    db.session.flush()
    return made


def dispute(paid: Charge, status: str, created: datetime, amount: int | None = None) -> None:
    db.session.add(
        Dispute(
            stripe_dispute_id=f"dp_{next(ids)}",
            customer_id=paid.customer_id,
            stripe_charge_id=paid.stripe_charge_id,
            amount=paid.amount if amount is None else amount,
            currency=paid.currency,
            status=status,
            reason="fraudulent",
            evidence_due_by=created + timedelta(days=7),
            created=created,
        )
    )


def refund(paid: Charge, amount: int, created: datetime, status: str = "succeeded") -> None:
    db.session.add(
        Refund(
            stripe_refund_id=f"re_{next(ids)}",
            customer_id=paid.customer_id,
            stripe_charge_id=paid.stripe_charge_id,
            amount=amount,
            currency=paid.currency,
            status=status,
            reason="requested_by_customer",
            created=created,
        )
    )


def subscription(
    owner: Customer,
    plan_key: str,
    status: SubscriptionStatus,
    created: datetime,
    ended: datetime | None = None,
) -> Subscription:
    made = Subscription(
        stripe_subscription_id=f"sub_{next(ids)}",
        customer_id=owner.id,
        plan_key=plan_key,
        stripe_price_id="price_x",
        status=status,
        current_period_start=month_day(0, 1),
        current_period_end=month_day(-1, 1),
        stripe_created=created,
        ended_at=ended,
        canceled_at=ended,
    )
    db.session.add(made)
    db.session.flush()
    return made


def invoice(
    owner: Customer, amount: int, created: datetime, status: str = "paid", currency: str = "usd"
) -> Invoice:
    number = next(ids)
    made = Invoice(
        stripe_invoice_id=f"in_{number:04}",
        customer_id=owner.id,
        status=status,
        currency=currency,
        amount_due=amount,
        amount_paid=amount if status == "paid" else 0,
        hosted_invoice_url=f"https://invoice.stripe.com/i/{number}",
        created=created,
    )
    db.session.add(made)
    return made


def table_rows(html: str, table_id: str) -> list[str]:
    """The visible text of each body row of the table ``table_id``."""
    table = re.search(rf'<table[^>]*id="{table_id}".*?</table>', html, re.S)
    assert table, f"no table {table_id}"
    body = table.group(0).split("<tbody>")[1]
    return [visible_text(row) for row in body.split("</tr>") if "<td" in row]


def csv_rows(response: httpx.Response) -> list[list[str]]:
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.text)))


# Disputes and refunds.


def test_monthly_disputes_refunds_and_the_dispute_rate_are_counted_as_the_networks_do(
    app: Flask, operator: WebClient
) -> None:
    with app.app_context():
        ada, bob = customer("ada@example.com"), customer("bob@example.com")
        last = [charge(ada, 5_000, month_day(1, day)) for day in (3, 4, 5, 6)]
        charge(bob, 5_000, month_day(1, 7), status="failed")  # not a successful charge
        dispute(last[0], "needs_response", month_day(1, 20))
        dispute(last[1], "warning_needs_response", month_day(1, 21))  # an inquiry: not counted
        this = [charge(bob, 2_000, month_day(0, 1)), charge(bob, 2_000, month_day(0, 2))]
        dispute(this[0], "lost", month_day(0, 3))
        refund(this[1], 1_000, month_day(0, 3))
        refund(this[1], 300, month_day(0, 4), status="pending")
        refund(this[1], 500, month_day(0, 4), status="failed")  # gave nothing back
        old = charge(ada, 9_000, month_day(13))
        dispute(old, "lost", month_day(13, 11))  # before the twelve months shown
        this_month, last_month = f"{month_day(0):%B %Y}", f"{month_day(1):%B %Y}"
        this_key, last_key = f"{month_day(0):%Y-%m}", f"{month_day(1):%Y-%m}"
        db.session.commit()

    page = operator.get("/admin/disputes")

    months = table_rows(page.text, "months")
    assert len(months) == 12
    assert months[0] == f"{this_month} 1 $20 2 $13 2 50.00%"
    assert months[1] == f"{last_month} 1 $50 0 — 4 25.00%"
    assert all(row.endswith("0 — 0 — 0 —") for row in months[2:])
    assert "divided by the charges that succeeded in that month" in visible_text(page.text)
    disputes = table_rows(page.text, "disputes")
    assert len(disputes) == 4
    assert disputes[0].startswith("bob@example.com")
    assert "$20 USD lost fraudulent" in disputes[0]
    assert [len(table_rows(page.text, "refunds"))] == [3]

    lost = operator.get("/admin/disputes", params={"status": "lost"})
    assert [row.split()[2] for row in table_rows(lost.text, "disputes")] == ["$20", "$90"]
    download = re.search(r'href="([^"]*table=disputes[^"]*)"', lost.text)
    assert download
    assert "status=lost" in download.group(1)
    rows = csv_rows(operator.get(download.group(1).replace("&amp;", "&")))
    assert rows[0] == [
        "dispute", "customer", "email", "charge", "amount", "currency", "status", "reason",
        "evidence_due_by", "created",
    ]  # fmt: skip
    assert [(r[2], r[4], r[6]) for r in rows[1:]] == [
        ("bob@example.com", "20.00", "lost"),
        ("ada@example.com", "90.00", "lost"),
    ]
    refunds = csv_rows(operator.get("/admin/disputes?format=csv&table=refunds"))
    assert [(r[1], r[4], r[6]) for r in refunds[1:]] == [
        ("bob", "5.00", "failed"),
        ("bob", "3.00", "pending"),
        ("bob", "10.00", "succeeded"),
    ]
    by_month = csv_rows(operator.get("/admin/disputes?format=csv&table=months"))
    assert len(by_month) == 13
    assert by_month[-1] == [this_key, "1", "20.00 usd", "2", "13.00 usd", "2", "0.5000"]
    assert by_month[-2] == [last_key, "1", "50.00 usd", "0", "", "4", "0.2500"]


# Geography.


def test_revenue_by_country_is_net_of_refunds_and_finds_each_customers_country(
    app: Flask, operator: WebClient
) -> None:
    with app.app_context():
        live, trialing, ended = (
            SubscriptionStatus.ACTIVE,
            SubscriptionStatus.TRIALING,
            SubscriptionStatus.CANCELED,
        )
        # Germany by its Stripe address: $100 paid, $25 of it refunded; a failed charge is none.
        anna = customer("anna@example.com", country="DE")
        charge(anna, 10_000, month_day(2), refunded=2_500, billing="FR", card="US")
        charge(anna, 9_999, month_day(2, 11), status="failed")
        subscription(anna, "pro_monthly", live, month_day(2))
        # Germany too; its charge is older than the twelve months shown by default.
        dirk = customer("dirk@example.com", country="DE")
        charge(dirk, 20_000, month_day(13))
        subscription(dirk, "pro_monthly", live, month_day(13))
        # No address: the billing country of its latest charge that has one (France), though
        # the latest charge of all has only a card (Italian).
        fleur = customer("fleur@example.com")
        charge(fleur, 2_000, month_day(3), billing="FR", card="BE")
        charge(fleur, 3_000, month_day(1), card="IT")
        subscription(fleur, "starter_monthly", trialing, month_day(3))
        # Only a card's country, paid in euros, and no longer subscribed.
        ines = customer("ines@example.com")
        charge(ines, 3_000, month_day(1), currency="eur", card="IT")
        subscription(ines, "pro_monthly", ended, month_day(5), ended=month_day(1))
        # Nothing known of where it is.
        subscription(customer("nemo@example.com"), "free", live, month_day(1))
        db.session.commit()

    page = operator.get("/admin/geography")

    assert table_rows(page.text, "countries") == [
        "DE €0 $75 2",
        "FR €0 $50 1",
        "IT €30 $0 0",
        "Unknown €0 $0 1",
    ]
    text = visible_text(page.text)
    assert "the billing address of its latest charge that has one" in text
    assert "less what was refunded of them" in text
    assert "DE, Revenue (USD): $75" in page.text
    assert "FR, Customers: 1" in page.text
    ever = operator.get("/admin/geography", params={"months": "0"})
    assert table_rows(ever.text, "countries")[0] == "DE €0 $275 2"
    in_euros = operator.get("/admin/geography", params={"currency": "eur"})
    assert table_rows(in_euros.text, "countries")[0] == "IT €30 $0 0"
    assert "IT, Revenue (EUR): €30" in in_euros.text

    download = csv_rows(operator.get("/admin/geography", params={"months": "0", "format": "csv"}))
    assert download == [
        ["country", "revenue_eur", "revenue_usd", "customers"],
        ["DE", "0.00", "275.00", "2"],
        ["FR", "0.00", "50.00", "1"],
        ["IT", "30.00", "0.00", "0"],
        ["unknown", "0.00", "0.00", "1"],
    ]


def test_geography_without_any_payment_says_there_is_no_data(operator: WebClient) -> None:
    text = visible_text(operator.get("/admin/geography").text)
    assert "No data yet." in text


# Invoices.


def test_invoices_are_found_by_customer_or_id_filtered_by_status_and_paged(
    app: Flask, operator: WebClient
) -> None:
    with app.app_context():
        ada, bob = customer("ada@example.com"), customer("bob@example.com")
        for day in range(52):
            invoice(ada, 4_900, month_day(3) + timedelta(days=day))
        invoice(bob, 1_900, month_day(0), status="open")
        newest_of_ada = f"in_{next(ids) - 2:04}"
        db.session.commit()

    first = operator.get("/admin/invoices")
    assert "53 invoices." in visible_text(first.text)
    rows = table_rows(first.text, "invoice-list")
    assert len(rows) == 50
    assert "bob@example.com open $19 $0" in rows[0]
    assert 'href="https://invoice.stripe.com/i/' in first.text
    second = operator.get("/admin/invoices", params={"page": "2"})
    assert len(table_rows(second.text, "invoice-list")) == 3

    found = operator.get("/admin/invoices", params={"q": "ADA@", "status": "paid"})
    assert "52 invoices matching “ADA@” with status paid." in visible_text(found.text)
    assert operator.get("/admin/invoices", params={"status": "open"}).text.count("<tr>") == 2
    one = operator.get("/admin/invoices", params={"q": newest_of_ada})
    assert [row.split()[0] for row in table_rows(one.text, "invoice-list")] == [newest_of_ada]

    link = re.search(r'href="([^"]*format=csv[^"]*)"', found.text)
    assert link
    download = csv_rows(operator.get(link.group(1).replace("&amp;", "&")))
    assert download[0][:7] == [
        "invoice", "customer", "email", "status", "amount_due", "amount_paid", "currency",
    ]  # fmt: skip
    assert len(download) == 53
    assert {(r[2], r[3], r[5]) for r in download[1:]} == {("ada@example.com", "paid", "49.00")}
    assert download[1][0] == newest_of_ada
    assert download[1][-1].startswith("https://invoice.stripe.com/i/")


# Top customers.


def test_top_customers_by_paid_revenue_and_by_usage_with_their_plan_history(
    app: Flask, operator: WebClient
) -> None:
    with app.app_context():
        ada, bob, cleo = (customer(f"{n}@example.com") for n in ("ada", "bob", "cleo"))
        subscription(
            ada, "starter_monthly", SubscriptionStatus.CANCELED, month_day(6), month_day(4)
        )
        current = subscription(ada, "pro_monthly", SubscriptionStatus.ACTIVE, month_day(4))
        subscription(bob, "enterprise_monthly", SubscriptionStatus.ACTIVE, month_day(2))
        # Ada: $49 twice paid, $20 refunded (a failed $10 refund gave nothing back) = $78.
        invoice(ada, 4_900, month_day(3))
        invoice(ada, 4_900, month_day(2))
        invoice(ada, 4_900, month_day(1), status="open")
        paid = charge(ada, 4_900, month_day(2))
        refund(paid, 2_000, month_day(1))
        refund(paid, 1_000, month_day(1), status="failed")
        # Bob: $90 paid, nothing refunded. Cleo paid in euros only.
        invoice(bob, 9_000, month_day(1))
        invoice(cleo, 19_000, month_day(1), currency="eur")
        period = name_period(current.stripe_subscription_id, current.current_period_start)
        bob_sub = db.session.scalars(select(Subscription).filter_by(customer_id=bob.id)).one()
        bob_period = name_period(bob_sub.stripe_subscription_id, bob_sub.current_period_start)
        for owner, feature, period_key, used in (
            (ada, "api_calls", period, 500),
            (ada, "api_calls", "an earlier period", 1_000),
            (bob, "api_calls", bob_period, 800),
            (cleo, "ai_chat", "an earlier period", 9),
        ):
            db.session.add(
                UsageCounter(
                    customer_id=owner.id, feature_key=feature, period_key=period_key, used=used
                )
            )
        started, switched = f"{month_day(6):%-d %B %Y}", f"{month_day(4):%-d %B %Y}"
        started_on, switched_on = f"{month_day(6):%Y-%m-%d}", f"{month_day(4):%Y-%m-%d}"
        db.session.commit()

    page = operator.get("/admin/top", params={"feature": "api_calls"})

    by_revenue = table_rows(page.text, "top-revenue")
    assert [row.split()[:5] for row in by_revenue] == [
        ["1", "bob@example.com", "$90", "$0", "$90"],
        ["2", "ada@example.com", "$98", "$20", "$78"],
    ]
    assert (
        f"starter_monthly {started} to {switched}, canceled pro_monthly {switched} to now, active"
        in by_revenue[1]
    )
    assert [row.split()[:3] for row in table_rows(page.text, "top-usage-period")] == [
        ["1", "bob@example.com", "800"],
        ["2", "ada@example.com", "500"],
    ]
    assert [row.split()[:3] for row in table_rows(page.text, "top-usage-all")] == [
        ["1", "ada@example.com", "1,500"],
        ["2", "bob@example.com", "800"],
    ]
    euros = operator.get("/admin/top", params={"currency": "eur", "feature": "ai_chat"})
    assert [row.split()[:5] for row in table_rows(euros.text, "top-revenue")] == [
        ["1", "cleo@example.com", "€190", "€0", "€190"]
    ]
    assert table_rows(euros.text, "top-usage-all")[0].split()[:3] == ["1", "cleo@example.com", "9"]

    revenue_csv = csv_rows(operator.get("/admin/top?format=csv&table=revenue"))
    assert revenue_csv[0] == ["customer", "email", "currency", "paid", "refunded", "net", "plans"]
    assert [r[:6] for r in revenue_csv[1:]] == [
        ["bob", "bob@example.com", "usd", "90.00", "0.00", "90.00"],
        ["ada", "ada@example.com", "usd", "98.00", "20.00", "78.00"],
    ]
    assert revenue_csv[2][6] == (
        f"starter_monthly {started_on} to {switched_on} (canceled); "
        f"pro_monthly {switched_on} to now (active)"
    )
    usage_csv = csv_rows(operator.get("/admin/top?format=csv&table=usage_all&feature=api_calls"))
    assert [r[:3] for r in usage_csv] == [
        ["customer", "email", "units"],
        ["ada", "ada@example.com", "1500"],
        ["bob", "bob@example.com", "800"],
    ]


# The whole way through the sandbox.


def test_a_paid_checkout_then_a_refund_and_a_dispute_show_on_the_pages(
    synced: Flask, client: WebClient, sandbox: Sandbox, operator: WebClient
) -> None:
    subscribe(WebClient(base_url=str(client.base_url)), "gwen@example.com", "pro_monthly", GB_CARD)
    subscribe(
        WebClient(base_url=str(client.base_url)), "dora@example.com", "pro_monthly", DISPUTED_CARD
    )
    # The trials end: both pay $49; Dora's bank disputes the charge.
    sandbox.advance(15 * DAY)
    sandbox.deliver_pending()
    before = table_rows(operator.get("/admin/geography").text, "countries")
    assert "GB $49 1" in before
    assert "US $49 1" in before

    with synced.app_context():
        gwen = db.session.scalars(select(Customer).filter_by(email="gwen@example.com")).one()
        paid = db.session.scalars(select(Charge).filter_by(customer_id=gwen.id)).one()
        gateway().client.v1.refunds.create(
            {"charge": paid.stripe_charge_id, "amount": 1_500, "reason": "requested_by_customer"}
        )
    sandbox.deliver_pending()

    page = operator.get("/admin/disputes")
    [refunded] = table_rows(page.text, "refunds")
    assert refunded.startswith("gwen@example.com $15 succeeded requested_by_customer")
    [disputed] = table_rows(page.text, "disputes")
    assert disputed.startswith("dora@example.com ch_")
    assert "$49 USD needs_response fraudulent" in disputed
    # Both charges, the dispute and the refund fall in the month the trials ended.
    assert [row for row in table_rows(page.text, "months") if row.endswith("1 $49 1 $15 2 50.00%")]
    after = table_rows(operator.get("/admin/geography").text, "countries")
    assert "GB $34 1" in after
    assert "US $49 1" in after


def test_each_page_reads_the_same_number_of_statements_however_many_customers(
    app: Flask, operator: WebClient
) -> None:
    pages = ["/admin/disputes", "/admin/geography", "/admin/invoices", "/admin/top"]

    def add_customers(count: int) -> None:
        with app.app_context():
            for _ in range(count):
                owner = customer(f"c{next(ids)}@example.com", country="NL")
                paid = charge(owner, 1_000, month_day(0, 1), card="NL")
                dispute(paid, "needs_response", month_day(0, 2))
                refund(paid, 100, month_day(0, 2))
                invoice(owner, 1_000, month_day(0, 1))
                live = subscription(owner, "pro_monthly", SubscriptionStatus.ACTIVE, month_day(1))
                db.session.add(
                    UsageCounter(
                        customer_id=owner.id,
                        feature_key="api_calls",
                        period_key=name_period(
                            live.stripe_subscription_id, live.current_period_start
                        ),
                        used=10,
                    )
                )
            db.session.commit()

    def statements() -> list[int]:
        counts = []
        with app.app_context():
            engine = db.engine
        seen: list[str] = []

        def count(*args: object) -> None:
            seen.append(str(args[2]))

        for page in pages:
            seen.clear()
            event.listen(engine, "before_cursor_execute", count)
            try:
                assert operator.get(page).status_code == 200
            finally:
                event.remove(engine, "before_cursor_execute", count)
            counts.append(len(seen))
        return counts

    add_customers(1)
    few = statements()
    assert all(few)
    add_customers(6)
    assert statements() == few
