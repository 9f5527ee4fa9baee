"""Zuora's official Python SDK (zuora-sdk), unchanged but for the host and
credentials, against the Zuora mock over HTTPS. Prints PASS/FAIL lines for run.sh."""
import datetime
import json
import os
import traceback

import zuora_sdk
from zuora_sdk.zuora_client import ZuoraClient


def endpoint(app):
    with open(os.environ["L2F_MOCKS_ENDPOINTS"]) as f:
        return next(e for e in json.load(f)["endpoints"] if e["app"] == app)["https"]


def check(name, fn):
    try:
        fn()
        print(f"PASS {name}", flush=True)
    except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
        print(f"FAIL {name}: {e!r} {traceback.format_exc(limit=2)}", flush=True)


config = zuora_sdk.Configuration(host=endpoint("zuora"))
config.ssl_ca_cert = os.environ["L2F_MOCKS_CA"]
client = ZuoraClient("6f1c2e1a-0d9b-4b7e-9a57-3c0e2f1d9a01", "l2f-zuora-secret", None, config)
state = {}


def auth():
    client.initialize()
    client.stop_auto_auth()
    assert client.token["access_token"], "no token"


def create_account():
    req = zuora_sdk.CreateAccountRequest(
        name="Acme GmbH",
        currency="EUR",
        bill_cycle_day=1,
        auto_pay=False,
        batch="Batch2",
        bill_to_contact=zuora_sdk.CreateAccountContact(first_name="Ada", last_name="Lovelace", country="DE", work_email="ada@example.com"),
    )
    r = client.accounts_api().create_account(req)
    assert r.success and r.account_number, r
    state["account"] = r.account_number


def order_request():
    return zuora_sdk.CreateOrderRequest(
        order_date=datetime.date(2026, 1, 1),
        existing_account_number=state["account"],
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


def create_subscription():
    r = client.orders_api().create_order(order_request(), idempotency_key="l2f-vendor-check-1", zuora_track_id="l2f-track-1")
    assert r.success and r.order_number, r
    numbers = r.subscription_numbers or [s.subscription_number for s in r.subscriptions]
    state["subscription"] = numbers[0]
    state["order"] = r.order_number


def idempotent_retry():
    r = client.orders_api().create_order(order_request(), idempotency_key="l2f-vendor-check-1")
    assert r.order_number == state["order"], (r.order_number, state["order"])
    subs = client.subscriptions_api().get_subscriptions_by_account(state["account"])
    assert len(subs.subscriptions) == 1, subs


def get_subscription():
    s = client.subscriptions_api().get_subscription_by_key(state["subscription"])
    assert s.subscription_number == state["subscription"] and s.auto_renew is True, s


check("zuora-sdk: OAuth client credentials", auth)
check("zuora-sdk: create account", create_account)
check("zuora-sdk: create subscription by order", create_subscription)
check("zuora-sdk: same Idempotency-Key makes one subscription", idempotent_retry)
check("zuora-sdk: get subscription", get_subscription)
