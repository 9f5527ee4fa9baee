"""simple-salesforce (the most used Python Salesforce client), unchanged, against the
Salesforce mock over HTTPS. It logs in by SOAP or by OAuth to *.salesforce.com only, so
the session comes from the mock's OAuth token endpoint (client credentials, as
Salesforce's OAuth docs show) and is handed to simple-salesforce with its instance URL,
which is how it takes an existing session. Prints PASS/FAIL lines for run.sh."""
import os

import requests
from simple_salesforce import Salesforce, SalesforceError
from simple_salesforce.exceptions import SalesforceMalformedRequest

from vc_check import check, endpoint

base = endpoint("salesforce")
ca = os.environ["L2F_MOCKS_CA"]
state = {}


def login():
    r = requests.post(
        f"{base}/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "l2f-client-id", "client_secret": "l2f-client-secret"},
        verify=ca,
        timeout=10,
    )
    r.raise_for_status()
    tok = r.json()
    session = requests.Session()
    session.verify = ca
    state["sf"] = Salesforce(instance_url=tok["instance_url"], session_id=tok["access_token"], version="62.0", session=session)
    assert state["sf"].sf_instance.startswith("127.0.0.1:"), state["sf"].sf_instance


def upsert_lead():
    sf = state["sf"]
    lead = {"LastName": "Lovelace", "FirstName": "Ada", "Company": "Analytical Engines", "CountryCode": "GB", "LeadSource": "Web"}
    assert sf.Lead.upsert("L2f_Lead_Id__c/lead_000001", lead) == 201
    assert sf.Lead.upsert("L2f_Lead_Id__c/lead_000001", {**lead, "Company": "AE Ltd"}) in (200, 204)
    got = sf.Lead.get_by_custom_id("L2f_Lead_Id__c", "lead_000001")
    assert got["Company"] == "AE Ltd", got


def upsert_refuses_a_field_not_declared_external():
    try:
        state["sf"].Lead.upsert("Email/ada@example.com", {"LastName": "X", "Company": "Y"})
    except SalesforceMalformedRequest as e:
        assert e.content[0]["errorCode"] == "INVALID_FIELD", e.content
        return
    raise AssertionError("upsert by a non-external-id field succeeded")


def collections():
    sf = state["sf"]
    records = [{"attributes": {"type": "Account"}, "Name": f"Acct {i:03}", "BillingCountryCode": "DE"} for i in range(200)]
    made = sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": records})
    assert len(made) == 200 and all(r["success"] for r in made), made[:2]
    state["accounts"] = [r["id"] for r in made]
    more = [{"attributes": {"type": "Account"}, "Name": f"Acct {i:03}"} for i in range(200, 450)]
    made = sf.restful("composite/sobjects", method="POST", json={"records": more[:200]})
    made += sf.restful("composite/sobjects", method="POST", json={"records": more[200:]})
    assert all(r["success"] for r in made)
    up = sf.restful(
        "composite/sobjects/Zuora__Subscription__c/Zuora__External_Id__c",
        method="PATCH",
        json={"allOrNone": False, "records": [{"attributes": {"type": "Zuora__Subscription__c"}, "Zuora__External_Id__c": "z1", "Name": "A-S00000001"}]},
    )
    assert up[0]["created"] is True, up
    got = sf.restful("composite/sobjects/Account", params={"ids": state["accounts"][0], "fields": "Id,Name"})
    assert got[0]["Name"] == "Acct 000", got


def collections_over_200_is_refused():
    records = [{"attributes": {"type": "Account"}, "Name": "x"}] * 201
    try:
        state["sf"].restful("composite/sobjects", method="POST", json={"records": records})
    except SalesforceError as e:
        assert e.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT", e.content
        return
    raise AssertionError("201 records accepted")


def query_all_follows_next_records_url():
    sf = state["sf"]
    first = sf.query("SELECT Id, Name FROM Account ORDER BY Name", headers={"Sforce-Query-Options": "batchSize=200"})
    total = first["totalSize"]
    assert first["done"] is False and len(first["records"]) == 200 and total >= 450, {k: first[k] for k in ("done", "totalSize")}
    everything = sf.query_all("SELECT Id, Name FROM Account ORDER BY Name", headers={"Sforce-Query-Options": "batchSize=200"})
    names = [r["Name"] for r in everything["records"]]
    assert len(names) == total and names == sorted(names), (len(names), total)


def parent_fields_and_or():
    sf = state["sf"]
    acct = state["accounts"][0]
    sf.Opportunity.create({"Name": "Deal", "StageName": "Closed Won", "CloseDate": "2026-12-01", "AccountId": acct, "Type": "New Business", "Sku__c": "premium-saas-1y", "Seats__c": 10})
    res = sf.query("SELECT Id, Sku__c, Account.BillingCountryCode FROM Opportunity WHERE IsWon = true AND Sku__c != null AND (StageName = 'Closed Won' OR StageName IN ('Won')) ORDER BY SystemModstamp ASC, Id ASC")
    rec = res["records"][0]
    assert rec["Account"]["BillingCountryCode"] == "DE" and rec["Sku__c"] == "premium-saas-1y", rec


def custom_object_crud():
    sf = state["sf"]
    r = sf.Zuora__CustomerAccount__c.create({"Name": "A00000001", "Zuora__External_Id__c": "za1"})
    assert r["success"] and r["id"].startswith("a0A"), r
    sf.Zuora__CustomerAccount__c.update(r["id"], {"Name": "A00000001 (GmbH)"})
    assert sf.Zuora__CustomerAccount__c.get(r["id"])["Name"] == "A00000001 (GmbH)"


check("simple-salesforce: session from the OAuth token endpoint", login)
check("simple-salesforce: upsert Lead by External ID, get by custom id", upsert_lead)
check("simple-salesforce: upsert by a non-External-ID field is INVALID_FIELD", upsert_refuses_a_field_not_declared_external)
check("simple-salesforce: sObject Collections create, upsert, retrieve", collections)
check("simple-salesforce: 201 records is EXCEEDED_ID_LIMIT", collections_over_200_is_refused)
check("simple-salesforce: query_all follows nextRecordsUrl", query_all_follows_next_records_url)
check("simple-salesforce: parent fields, OR, IN, two sort keys", parent_fields_and_or)
check("simple-salesforce: custom object create, update, get", custom_object_crud)
