"""Mailgun's official Python SDK (mailgun), unchanged but for its api_url, against the
Mailgun mock over HTTPS. Prints PASS/FAIL lines for run.sh."""
import os

import requests
from mailgun.client import Client

from vc_check import check, endpoint

url = endpoint("mail")
ca = os.environ["L2F_MOCKS_CA"]


def send():
    with Client(auth=("api", "key-l2f-mock"), api_url=url) as client:
        r = client.messages.create(
            domain="mg.l2f.example",
            data={"from": "Licensing <licensing@mg.l2f.example>", "to": ["grace@example.com"], "subject": "Your license key (py)", "text": "Here it is."},
        )
        assert r.status_code == 200, (r.status_code, r.text)
        body = r.json()
        assert body["message"] == "Queued. Thank you." and body["id"].endswith("@mg.l2f.example>"), body


def recorded():
    r = requests.get(f"{url}/__admin/messages", params={"to": "grace@example.com"}, verify=ca, timeout=10)
    items = r.json()["items"]
    assert len(items) == 1 and items[0]["subject"] == "Your license key (py)", items


def wrong_key():
    with Client(auth=("api", "wrong"), api_url=url) as client:
        r = client.messages.create(domain="mg.l2f.example", data={"from": "a@b.example", "to": "c@d.example", "subject": "s", "text": "t"})
        assert r.status_code == 401, (r.status_code, r.text)


def requests_as_mailgun_docs_show():
    # https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/messages
    r = requests.post(
        f"{url}/v3/mg.l2f.example/messages",
        auth=("api", "key-l2f-mock"),
        data={"from": "Excited User <mailgun@mg.l2f.example>", "to": ["bar@example.com"], "subject": "Hello", "text": "Testing some Mailgun awesomeness!"},
        verify=ca,
        timeout=10,
    )
    assert r.status_code == 200 and r.json()["message"] == "Queued. Thank you.", r.text


def events():
    # https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/events/get-v3-domain_name-events
    with Client(auth=("api", "key-l2f-mock"), api_url=url) as client:
        sent = client.messages.create(
            domain="mg.l2f.example",
            data={"from": "Billing <billing@mg.l2f.example>", "to": ["ian@example.com"], "subject": "Renewal notice (py)", "text": "Soon.", "v:l2f-key": "notice-py-14"},
        ).json()
        r = client.events.get(domain="mg.l2f.example", filters={"begin": "Thu, 01 Jan 1970 00:00:00 -0000", "ascending": "yes", "limit": 10, "pretty": "yes", "recipient": "ian@example.com"})
        assert r.status_code == 200, (r.status_code, r.text)
        body = r.json()
        kinds = sorted(i["event"] for i in body["items"])
        assert kinds == ["accepted", "delivered"], body
        assert all(i["user-variables"] == {"l2f-key": "notice-py-14"} for i in body["items"]), body
        assert all("<" + i["message"]["headers"]["message-id"] + ">" == sent["id"] for i in body["items"]), body
        nxt = requests.get(body["paging"]["next"], auth=("api", "key-l2f-mock"), verify=ca, timeout=10).json()
        assert nxt["items"] == [], nxt


check("mailgun (Python SDK): messages.create is queued", send)
check("mailgun (Python SDK): message is recorded", recorded)
check("mailgun (Python SDK): wrong key is refused", wrong_key)
check("mailgun (Python SDK): events.get by recipient with user-variables, paging", events)
check("requests as Mailgun's docs show: send", requests_as_mailgun_docs_show)
