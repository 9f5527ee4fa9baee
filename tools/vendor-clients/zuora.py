"""Zuora's official Python SDK (zuora-sdk), unchanged but for the host and
credentials, against the Zuora mock over HTTPS. Prints PASS/FAIL lines for run.sh."""
import base64
import datetime
import json
import os
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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

# A callout receiver on the port run.sh configured the mock with: it challenges a request
# without credentials (401 + WWW-Authenticate) and accepts the one with them.
received = []
EXPECTED = "Basic " + base64.b64encode(b"zuora:l2f-callout-secret").decode()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        received.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": json.loads(body or b"null")})
        if self.headers.get("Authorization") != EXPECTED:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="l2f"')
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["L2F_CALLOUT_PORT"])), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()


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


def catalog():
    r = client.products_api().get_products(page=1, page_size=40)
    assert r.success is not False, r
    skus = [p.sku for p in r.products]
    assert "premium-saas-1y" in skus and "ci-minutes-1000" in skus, skus


def custom_fields():
    req = order_request()
    req.subscriptions[0].custom_fields = {"L2fOrderId__c": "sub_000042"}
    r = client.orders_api().create_order(req, idempotency_key="l2f-vendor-check-cf")
    number = (r.subscription_numbers or [s.subscription_number for s in r.subscriptions])[0]
    state["cf_subscription"] = number
    s = client.subscriptions_api().get_subscription_by_key(number)
    assert s.to_dict().get("L2fOrderId__c") == "sub_000042", s.to_dict()
    u = client.subscriptions_api().update_subscription(number, zuora_sdk.UpdateSubscriptionRequest(auto_renew=False, L2fNote__c="mirrored"))
    assert u.success, u
    s = client.subscriptions_api().get_subscription_by_key(number)
    assert s.auto_renew is False and s.to_dict().get("L2fNote__c") == "mirrored", s.to_dict()


def callouts_arrive_with_zuora_headers_and_basic_auth():
    deadline = time.time() + 10
    while time.time() < deadline and len(received) < 2:
        time.sleep(0.05)
    assert len(received) >= 2, received
    first, second = received[0], received[1]
    assert "authorization" not in first["headers"], first["headers"]
    assert second["headers"].get("authorization") == EXPECTED, second["headers"]
    assert first["headers"]["zuora-notification-id"] == second["headers"]["zuora-notification-id"]
    assert first["headers"]["zuora-request-id"] != second["headers"]["zuora-request-id"]
    assert first["headers"]["x-amzn-trace-id"].startswith("Root=1-")
    body = second["body"]
    assert body["eventType"] == "SubscriptionCreated" and body["subscriptionNumber"] == state["subscription"], body


def callout_history():
    deadline = time.time() + 10
    while time.time() < deadline:
        h = client.notifications_api().get_callout_history(failed_only=False, page_size=40)
        if len(h.callout_histories or []) >= 3:
            break
        time.sleep(0.1)
    rows = h.callout_histories
    numbers = {r.event_context["subscriptionNumber"] for r in rows}
    assert state["subscription"] in numbers, [r.to_dict() for r in rows]
    assert all(r.request_method == "POST" and str(r.response_code) == "200" for r in rows), [r.to_dict() for r in rows]
    failed = client.notifications_api().get_callout_history()
    assert failed.callout_histories == [], failed


check("zuora-sdk: OAuth client credentials", auth)
check("zuora-sdk: create account", create_account)
check("zuora-sdk: create subscription by order", create_subscription)
check("zuora-sdk: same Idempotency-Key makes one subscription", idempotent_retry)
check("zuora-sdk: get subscription", get_subscription)
check("zuora-sdk: catalog lists products by SKU", catalog)
check("zuora-sdk: subscription custom fields from an order and the update call", custom_fields)
check("callout receiver: Zuora's headers, basic auth after a 401 challenge", callouts_arrive_with_zuora_headers_and_basic_auth)
check("zuora-sdk: callout notification history", callout_history)
server.shutdown()
