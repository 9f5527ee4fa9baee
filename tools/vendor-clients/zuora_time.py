"""Zuora's official Python SDK (zuora-sdk), unchanged but for the host and credentials,
reading what the Zuora mock does on a simulated clock: the auto-renewal's invoice, its
declined payment, the Batch3 bill run and the renewal notices in the email history.
run.sh serves this mock in its own process with `clock.mode = "simulated"`; the clock is
moved with `POST /__admin/clock` (plain requests). Prints PASS/FAIL lines for run.sh."""
import datetime
import os

import requests
import zuora_sdk
from zuora_sdk.zuora_client import ZuoraClient

from vc_check import check, endpoint

url = endpoint("zuora")
ca = os.environ["L2F_MOCKS_CA"]
config = zuora_sdk.Configuration(host=url)
config.ssl_ca_cert = ca
client = ZuoraClient("6f1c2e1a-0d9b-4b7e-9a57-3c0e2f1d9a01", "l2f-zuora-secret", None, config)
client.initialize()
state = {}


def admin(path, body):
    r = requests.post(f"{url}{path}", json=body, verify=ca, timeout=30)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def setup_and_renew():
    acct = client.accounts_api().create_account(
        zuora_sdk.CreateAccountRequest(
            name="Renewing Ltd",
            currency="USD",
            auto_pay=True,
            bill_to_contact=zuora_sdk.CreateAccountContact(first_name="Ada", last_name="Lovelace", country="GB", work_email="ada@example.com"),
        )
    )
    state["account"], state["account_id"] = acct.account_number, acct.account_id
    order = client.orders_api().create_order(
        zuora_sdk.CreateOrderRequest(
            order_date=datetime.date(2026, 1, 1),
            existing_account_number=acct.account_number,
            subscriptions=[
                zuora_sdk.CreateOrderSubscription(
                    order_actions=[
                        zuora_sdk.CreateOrderAction(
                            type="CreateSubscription",
                            create_subscription=zuora_sdk.CreateOrderCreateSubscription(
                                terms=zuora_sdk.OrderActionCreateSubscriptionTerms(
                                    auto_renew=True,
                                    initial_term=zuora_sdk.InitialTerm(period=12, period_type="Month", term_type="TERMED"),
                                    renewal_terms=[zuora_sdk.RenewalTerm(period=12, period_type="Month")],
                                ),
                                subscribe_to_rate_plans=[zuora_sdk.CreateOrderRatePlanOverride(product_rate_plan_id="prp-premium-saas")],
                            ),
                        )
                    ]
                )
            ],
        )
    )
    state["subscription"] = (order.subscription_numbers or [s.subscription_number for s in order.subscriptions])[0]
    admin(f"/__admin/accounts/{acct.account_number}/card", {"declines": True, "gatewayResponseCode": "51", "gatewayResponse": "Insufficient funds"})
    moved = admin("/__admin/clock", {"set": "2027-01-02T00:00:00Z"})
    assert moved["now"] == "2027-01-02T00:00:00.000Z", moved
    s = client.subscriptions_api().get_subscription_by_key(state["subscription"])
    assert str(s.term_start_date) == "2027-01-01" and str(s.term_end_date) == "2028-01-01" and s.version == 2, s


def invoices():
    r = client.object_queries_api().query_invoices(filter=[f"accountId.EQ:{state['account_id']}"], expand=["invoiceitems"])
    assert len(r.data) == 1, r
    inv = r.data[0]
    assert inv.amount == 29.0 and inv.balance == 29.0 and str(inv.status) .endswith("Posted"), inv
    state["invoice"] = inv.invoice_number
    one = client.invoices_api().get_invoice(inv.invoice_number)
    assert one.invoice_number == inv.invoice_number and one.bill_run_id, one
    state["bill_run"] = one.bill_run_id
    items = client.invoices_api().get_invoice_items(inv.invoice_number)
    assert len(items.invoice_items) == 1 and items.invoice_items[0].quantity == 1, items


def declined_payment():
    r = client.payments_api().get_retrieve_all_payments(account_id=state["account_id"])
    assert len(r.payments) == 1, r
    p = r.payments[0]
    assert str(p.status).endswith("Error") and p.gateway_response_code == "51" and p.gateway_response == "Insufficient funds", p
    one = client.payments_api().get_payment(p.id)
    assert one.number == p.number, one
    parts = client.payments_api().get_payment_parts(p.number)
    assert parts.parts == [], parts


def bill_run():
    r = client.bill_run_api().get_bill_run(state["bill_run"])
    assert r.batches == ["Batch3"] and r.auto_renewal is True, r


def email_history():
    rows = []
    for start in [datetime.datetime(2026, 10, 1), datetime.datetime(2026, 12, 30)]:
        h = client.notifications_api().get_email_history(start_time=start, end_time=start + datetime.timedelta(days=3), failed_only=False, page_size=40)
        rows.extend(h.email_histories or [])
    names = [r.notification for r in rows]
    assert names == ["Renewal notice 90 days", "Renewal notice 0 days"], [r.to_dict() for r in rows]
    assert all(r.to_email == "ada@example.com" and r.result == "OK" for r in rows), [r.to_dict() for r in rows]
    failed = client.notifications_api().get_email_history(start_time=datetime.datetime(2026, 10, 1), end_time=datetime.datetime(2026, 10, 4))
    assert failed.email_histories == [], failed


check("zuora-sdk on the clock: subscription auto-renewed at term end", setup_and_renew)
check("zuora-sdk on the clock: renewal invoice by object query, invoice and items", invoices)
check("zuora-sdk on the clock: declined renewal payment, payment, parts", declined_payment)
check("zuora-sdk on the clock: Batch3 auto-renewal bill run", bill_run)
check("zuora-sdk on the clock: renewal notices in the email history", email_history)
