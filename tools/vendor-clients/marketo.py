"""marketorestpython, unchanged but for its host (it builds https://<munchkin>.mktorest.com,
so the attribute is pointed at the mock after construction), against the Marketo mock over
HTTPS. Its lead query is the `POST /rest/v1/leads.json?_method=GET` form. Prints PASS/FAIL
lines for run.sh."""
from marketorestpython.client import MarketoClient

from vc_check import check, endpoint

mc = MarketoClient("123-ABC-456", "l2f-marketo-client", "l2f-marketo-secret", max_retry_time=5)
mc.host = endpoint("marketo")

lead = {"email": "grace@example.com", "firstName": "Grace", "lastName": "Hopper", "company": "Navy", "country": "US", "leadSource": "Web"}


def authenticate():
    mc.authenticate()
    assert mc.token and mc.token_type == "bearer" and mc.expires_in > 0, (mc.token, mc.token_type)


def create_update():
    r = mc.execute(method="create_update_leads", leads=[lead], action="createOrUpdate", lookupField="email")
    assert r[0]["status"] == "created", r
    r = mc.execute(method="create_update_leads", leads=[{**lead, "firstName": "Grace B."}], lookupField="email")
    assert r[0]["status"] == "updated", r


def skipped_reasons():
    r = mc.execute(method="create_update_leads", leads=[{"email": "half@example.com"}], action="createOnly")
    assert r[0]["status"] == "skipped" and r[0]["reasons"][0]["code"] == "1003", r


def query_by_filter_with_method_get():
    more = [{**lead, "email": f"grace{i}@example.com"} for i in range(7)]
    mc.execute(method="create_update_leads", leads=more)
    emails = [m["email"] for m in more]
    found = mc.execute(method="get_multiple_leads_by_filter_type", filterType="email", filterValues=emails, fields=["email", "firstName"], batchSize=3)
    assert sorted(f["email"] for f in found) == sorted(emails), found


check("marketorestpython: client credentials token", authenticate)
check("marketorestpython: createOrUpdate creates then updates", create_update)
check("marketorestpython: skipped with reason 1003", skipped_reasons)
check("marketorestpython: leads by filter (POST _method=GET, paged)", query_by_filter_with_method_get)
