//! Time-driven billing: what Zuora does when a subscription's term ends, and the
//! invoices, payments and bill runs it leaves, readable over their real endpoints.
//!
//! At 00:00 UTC of a TERMED, `Active` subscription's `termEndDate`, as the clock passes it:
//! - `autoRenew: true`: the subscription renews for `renewalTerm` months (new
//!   `termStartDate` = the old end, `version` + 1, `SubscriptionRenewed`); the auto-renewal
//!   bill run of that day (batch `Batch3` by default, `autoRenewal: true`; Zuora's Bill Run
//!   object: `batches`, `autoRenewal`, `targetDate`, `invoiceDate`) posts an invoice of
//!   catalog unit price × quantity per rate plan; when the account has `autoPay`, an
//!   electronic payment is attempted: `Processed` (invoice paid, `PaymentProcessed`) or,
//!   when the account's card declines (`POST /__admin/accounts/{key}/card`), `Error` with
//!   the gateway's code and message (`PaymentDeclined`); the subscription stays renewed
//!   and the invoice unpaid.
//! - `autoRenew: false`: the subscription stays `Active` with its term ended, as Zuora
//!   keeps it (a termed subscription that is not renewed is not cancelled); the mock raises
//!   `SubscriptionTermEnded` (a custom event) so the hub learns of it.
//!
//! Endpoints (shapes of zuora-sdk 3.21's models, generated from Zuora's OpenAPI):
//! - `GET /v1/invoices/{invoiceKey}` (InvoiceResponse), `GET /v1/invoices/{invoiceKey}/items`
//!   https://developer.zuora.com/v1-api-reference/api/operation/GET_InvoiceItems/
//! - `GET /object-query/invoices` and `/object-query/payments` (`filter[]=field.EQ:value`,
//!   `expand[]=invoiceitems`, `pageSize` 1..50, `cursor`): Zuora's "List invoices", as its
//!   tutorial lists an account's invoices;
//!   https://developer.zuora.com/docs/get-started/tutorials/view-all-invoices
//! - `GET /v1/payments` (filters `accountId`, `status`, `number`, `type`, `currency`,
//!   `amount`; `page`, `pageSize` ≤ 40), `GET /v1/payments/{paymentKey}`,
//!   `GET /v1/payments/{paymentKey}/parts`;
//!   https://developer.zuora.com/v1-api-reference/api/operation/GET_RetrieveAllPayments/
//! - `GET /v1/bill-runs/{billRunKey}`.
//!   https://developer.zuora.com/v1-api-reference/api/operation/GET_BillRun/

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{base_url, catalog, next_id, parse_json, str_field, Data, Subscription, ZError, Zuora};
use super::{RES_ACCOUNT, RES_INVOICE, RES_PAYMENT, RES_REQUEST};
use crate::kit;

/// An invoice line: one rate plan's charge for the new term.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceItem {
    /// 32-hex id.
    pub id: String,
    /// The subscription's id.
    pub subscription_id: String,
    /// The subscription's number (`subscriptionName` in Zuora's item).
    pub subscription_name: String,
    /// The catalog's product rate plan id.
    pub product_rate_plan_id: String,
    /// The charge's name.
    pub charge_name: String,
    /// The product's name.
    pub product_name: String,
    /// The product's SKU.
    pub sku: String,
    /// Units.
    pub quantity: f64,
    /// Catalog price per unit.
    pub unit_price: f64,
    /// quantity × unitPrice.
    pub charge_amount: f64,
    /// Unit of measure.
    pub unit_of_measure: String,
    /// First day served.
    pub service_start_date: String,
    /// Last day served.
    pub service_end_date: String,
}

/// A posted invoice.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Invoice {
    /// 32-hex id.
    pub id: String,
    /// `INV00000001`.
    pub invoice_number: String,
    /// The account's id.
    pub account_id: String,
    /// The account's number.
    pub account_number: String,
    /// Total.
    pub amount: f64,
    /// Still owed.
    pub balance: f64,
    /// Paid so far.
    pub payment_amount: f64,
    /// ISO currency.
    pub currency: String,
    /// `yyyy-MM-dd`.
    pub invoice_date: String,
    /// `yyyy-MM-dd`.
    pub due_date: String,
    /// `yyyy-MM-dd`.
    pub target_date: String,
    /// `Posted`.
    pub status: String,
    /// The bill run that made it.
    pub bill_run_id: Option<String>,
    /// When it was made (ms).
    pub created_ms: i64,
    /// Its lines.
    pub items: Vec<InvoiceItem>,
}

/// A payment (electronic, by the account's default card).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    /// 32-hex id.
    pub id: String,
    /// `P-00000001`.
    pub number: String,
    /// The account's id.
    pub account_id: String,
    /// The account's number.
    pub account_number: String,
    /// Amount attempted.
    pub amount: f64,
    /// Applied to the invoice (0 when it failed).
    pub applied_amount: f64,
    /// ISO currency.
    pub currency: String,
    /// `Processed` or `Error`.
    pub status: String,
    /// The gateway's message.
    pub gateway_response: String,
    /// The gateway's code.
    pub gateway_response_code: String,
    /// `Submitted`.
    pub gateway_state: String,
    /// `yyyy-MM-dd`.
    pub effective_date: String,
    /// When it was made (ms).
    pub created_ms: i64,
    /// The invoice it pays.
    pub invoice_id: String,
    /// That invoice's number.
    pub invoice_number: String,
    /// The subscription billed.
    pub subscription_number: String,
}

/// An auto-renewal bill run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BillRun {
    /// 32-hex id.
    pub id: String,
    /// `BR-00000001`.
    pub bill_run_number: String,
    /// `["Batch3"]`.
    pub batches: Vec<String>,
    /// `yyyy-MM-dd`.
    pub target_date: String,
    /// When it ran (ms).
    pub created_ms: i64,
    /// Invoices it posted.
    pub invoice_numbers: Vec<String>,
}

/// How an account's default card answers the next payments.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Card {
    /// Every payment is declined while true.
    pub declines: bool,
    /// The code a decline carries (default `05`).
    pub gateway_response_code: Option<String>,
    /// The message a decline carries.
    pub gateway_response: Option<String>,
    /// Declines only this many more payments, then approves again (none: until reset).
    #[serde(default)]
    pub times: Option<u32>,
}

/// What was done for a subscription's current term (so each notice and the term end
/// happen once per term).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TermLedger {
    /// The term this ledger is for.
    pub term_start_date: String,
    /// When the mock learned of the term (ms): notices due before are not sent.
    pub known_ms: i64,
    /// Notices handled, by days before term end: `sent`, `muted` or `skipped`.
    pub notices: BTreeMap<u32, String>,
    /// The term end was processed.
    pub ended: bool,
}

/// Default decline code (ISO 8583 "Do not honor").
pub const DEFAULT_DECLINE_CODE: &str = "05";
/// Default decline message.
pub const DEFAULT_DECLINE_MESSAGE: &str = "Transaction declined: Do not honor";

/// 00:00 UTC of a date, in ms.
pub(super) fn midnight_ms(date: chrono::NaiveDate) -> i64 {
    date.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or_default()
}

/// `yyyy-MM-dd` of a time.
pub(super) fn date_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .date_naive()
        .to_string()
}

/// `yyyy-MM-dd HH:mm:ss` of a time, as Zuora's created/updated dates.
pub(super) fn datetime_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Days until due of a payment term (`Net 30`, `Due Upon Receipt`).
fn term_days(payment_term: &str) -> i64 {
    if payment_term.eq_ignore_ascii_case("Due Upon Receipt") {
        return 0;
    }
    payment_term
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or(30)
}

/// Something due for a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Due {
    /// The renewal notice this many days before term end.
    Notice(u32),
    /// The term end.
    TermEnd,
}

impl Zuora {
    /// The ledger of `sub`'s current term, made afresh when the term changed (learned at the
    /// term's start, or at `now_ms` when it starts later than the mock learned of it).
    pub(super) fn ledger<'a>(d: &'a mut Data, sub: &Subscription) -> &'a mut TermLedger {
        let start = chrono::NaiveDate::parse_from_str(&sub.term_start_date, "%Y-%m-%d")
            .map(midnight_ms)
            .unwrap_or_default();
        let l = d.terms.entry(sub.subscription_number.clone()).or_default();
        if l.term_start_date != sub.term_start_date {
            *l = TermLedger {
                term_start_date: sub.term_start_date.clone(),
                known_ms: start,
                notices: BTreeMap::new(),
                ended: false,
            };
        }
        l
    }

    /// What is due for `sub` at or before `until`, with the time it fell due.
    pub(super) fn due_for(&self, d: &Data, sub: &Subscription, until: i64) -> Vec<(i64, Due)> {
        if sub.status != "Active" || sub.term_type != "TERMED" {
            return Vec::new();
        }
        let Ok(end) = chrono::NaiveDate::parse_from_str(&sub.term_end_date, "%Y-%m-%d") else {
            return Vec::new();
        };
        let end_ms = midnight_ms(end);
        let start = chrono::NaiveDate::parse_from_str(&sub.term_start_date, "%Y-%m-%d")
            .map(midnight_ms)
            .unwrap_or_default();
        let fresh = TermLedger {
            term_start_date: sub.term_start_date.clone(),
            known_ms: start,
            ..TermLedger::default()
        };
        let ledger = d
            .terms
            .get(&sub.subscription_number)
            .filter(|l| l.term_start_date == sub.term_start_date)
            .unwrap_or(&fresh);
        let mut out = Vec::new();
        for rule in &self.cfg.notices {
            let at = end_ms - i64::from(rule.days) * 86_400_000;
            if at >= ledger.known_ms && at <= until && !ledger.notices.contains_key(&rule.days) {
                out.push((at, Due::Notice(rule.days)));
            }
        }
        if !ledger.ended && end_ms <= until {
            out.push((end_ms, Due::TermEnd));
        }
        out
    }

    /// Applies everything due up to `until`, earliest first (a notice before a term end of
    /// the same instant), each at the time it fell due.
    pub(super) fn apply_due(&self, d: &mut Data, until: i64) -> usize {
        let mut heap = std::collections::BinaryHeap::new();
        let numbers: Vec<String> = d.subscriptions.keys().cloned().collect();
        for n in &numbers {
            let sub = &d.subscriptions[n];
            for (at, due) in self.due_for(d, sub, until) {
                heap.push(std::cmp::Reverse((at, due, n.clone())));
            }
        }
        let mut applied = 0;
        while let Some(std::cmp::Reverse((at, due, number))) = heap.pop() {
            let Some(sub) = d.subscriptions.get(&number).cloned() else {
                continue;
            };
            // Still due? (an earlier item of this subscription may have changed its term)
            if !self.due_for(d, &sub, until).contains(&(at, due)) {
                continue;
            }
            applied += 1;
            match due {
                Due::Notice(days) => self.send_notice(d, &sub, days, at),
                Due::TermEnd => {
                    self.end_term(d, &sub, at);
                    if let Some(after) = d.subscriptions.get(&number).cloned() {
                        for (at2, due2) in self.due_for(d, &after, until) {
                            heap.push(std::cmp::Reverse((at2, due2, number.clone())));
                        }
                    }
                }
            }
        }
        applied
    }

    /// The term end of `sub` at `at`: renew, bill and collect, or end the term.
    fn end_term(&self, d: &mut Data, sub: &Subscription, at: i64) {
        Self::ledger(d, sub).ended = true;
        if !sub.auto_renew {
            self.emit_subscription(
                d,
                at,
                "SubscriptionTermEnded",
                &sub.subscription_number,
                None,
                json!({ "termEndDate": sub.term_end_date, "autoRenew": false }),
            );
            return;
        }
        let Ok(old_end) = chrono::NaiveDate::parse_from_str(&sub.term_end_date, "%Y-%m-%d") else {
            return;
        };
        let new_end = super::add_months(old_end, sub.renewal_term);
        let renewed = {
            let Some(s) = d.subscriptions.get_mut(&sub.subscription_number) else {
                return;
            };
            s.term_start_date = old_end.to_string();
            s.term_end_date = new_end.to_string();
            s.current_term = s.renewal_term;
            s.version += 1;
            s.clone()
        };
        // The new term's notices are due from its start.
        let l = Self::ledger(d, &renewed);
        l.known_ms = at;
        let invoice = self.bill_renewal(d, &renewed, at);
        self.emit_subscription(
            d,
            at,
            "SubscriptionRenewed",
            &renewed.subscription_number,
            None,
            json!({
                "termStartDate": renewed.term_start_date,
                "termEndDate": renewed.term_end_date,
                "autoRenew": true,
                "invoiceId": invoice.id,
                "invoiceNumber": invoice.invoice_number,
                "amount": invoice.amount,
                "currency": invoice.currency,
                "billRunId": invoice.bill_run_id,
            }),
        );
        let auto_pay = d
            .accounts
            .get(&renewed.account_number)
            .is_some_and(|a| a.auto_pay);
        if auto_pay && invoice.amount > 0.0 {
            self.collect(d, &renewed, &invoice, at, true);
        }
    }

    /// The day's auto-renewal bill run (made on first use) posts the renewal invoice of
    /// `sub`'s new term: catalog unit price × quantity per rate plan.
    fn bill_renewal(&self, d: &mut Data, sub: &Subscription, at: i64) -> Invoice {
        let target = date_of(at);
        let batch = self.cfg.renewal_batch.clone();
        let run_number = match d
            .bill_runs
            .values()
            .find(|r| r.target_date == target && r.batches == [batch.clone()])
        {
            Some(r) => r.bill_run_number.clone(),
            None => {
                let (n, id) = next_id(d);
                let number = format!("BR-{n:08}");
                d.bill_runs.insert(
                    number.clone(),
                    BillRun {
                        id,
                        bill_run_number: number.clone(),
                        batches: vec![batch],
                        target_date: target.clone(),
                        created_ms: at,
                        invoice_numbers: Vec::new(),
                    },
                );
                number
            }
        };
        let run_id = d.bill_runs[&run_number].id.clone();
        let invoice = self.make_invoice(d, sub, at, Some(run_id));
        if let Some(r) = d.bill_runs.get_mut(&run_number) {
            r.invoice_numbers.push(invoice.invoice_number.clone());
        }
        invoice
    }

    /// Posts an invoice for `sub`'s current term at `at`.
    pub(super) fn make_invoice(
        &self,
        d: &mut Data,
        sub: &Subscription,
        at: i64,
        bill_run_id: Option<String>,
    ) -> Invoice {
        let (account_id, currency, term) = d
            .accounts
            .get(&sub.account_number)
            .map(|a| (a.id.clone(), a.currency.clone(), a.payment_term.clone()))
            .unwrap_or_else(|| (String::new(), "USD".into(), "Net 30".into()));
        let service_end = chrono::NaiveDate::parse_from_str(&sub.term_end_date, "%Y-%m-%d")
            .ok()
            .and_then(|e| e.pred_opt())
            .map(|e| e.to_string())
            .unwrap_or_default();
        let mut items = Vec::new();
        for rp in &sub.rate_plans {
            let (product, plan) = catalog::product_of(&self.cfg.products, &rp.product_rate_plan_id)
                .map(|(p, plan)| {
                    (
                        (p.name.clone(), p.sku.clone()),
                        (plan.name.clone(), plan.unit_price, plan.uom.clone()),
                    )
                })
                .unwrap_or_else(|| {
                    (
                        (rp.rate_plan_name.clone(), String::new()),
                        (rp.rate_plan_name.clone(), 0.0, "Each".into()),
                    )
                });
            let quantity = rp.quantity.unwrap_or(1.0);
            let (_, id) = next_id(d);
            items.push(InvoiceItem {
                id,
                subscription_id: sub.id.clone(),
                subscription_name: sub.subscription_number.clone(),
                product_rate_plan_id: rp.product_rate_plan_id.clone(),
                charge_name: format!("{} - per {}", plan.0, plan.2),
                product_name: product.0,
                sku: product.1,
                quantity,
                unit_price: plan.1,
                charge_amount: cents(quantity * plan.1),
                unit_of_measure: plan.2,
                service_start_date: sub.term_start_date.clone(),
                service_end_date: service_end.clone(),
            });
        }
        let amount = cents(items.iter().map(|i| i.charge_amount).sum());
        let (n, id) = next_id(d);
        let due = date_of(at + term_days(&term) * 86_400_000);
        let invoice = Invoice {
            id,
            invoice_number: format!("INV{n:08}"),
            account_id,
            account_number: sub.account_number.clone(),
            amount,
            balance: amount,
            payment_amount: 0.0,
            currency,
            invoice_date: date_of(at),
            due_date: due,
            target_date: date_of(at),
            status: "Posted".into(),
            bill_run_id,
            created_ms: at,
            items,
        };
        d.invoices
            .insert(invoice.invoice_number.clone(), invoice.clone());
        invoice
    }

    /// Charges the account's default card for `invoice`: processed, or declined as the
    /// card says, raising `PaymentProcessed` / `PaymentDeclined`.
    pub(super) fn collect(
        &self,
        d: &mut Data,
        sub: &Subscription,
        invoice: &Invoice,
        at: i64,
        auto_renewal: bool,
    ) -> Payment {
        let card = d
            .cards
            .get(&sub.account_number)
            .cloned()
            .unwrap_or_default();
        let payment = self.pay(d, sub, invoice, at, auto_renewal, &card);
        if let (true, Some(left)) = (card.declines, card.times) {
            if let Some(c) = d.cards.get_mut(&sub.account_number) {
                c.times = Some(left.saturating_sub(1));
                c.declines = left > 1;
            }
        }
        payment
    }

    /// Makes the payment with the card given.
    pub(super) fn pay(
        &self,
        d: &mut Data,
        sub: &Subscription,
        invoice: &Invoice,
        at: i64,
        auto_renewal: bool,
        card: &Card,
    ) -> Payment {
        let (n, id) = next_id(d);
        let declined = card.declines;
        let payment = Payment {
            id,
            number: format!("P-{n:08}"),
            account_id: invoice.account_id.clone(),
            account_number: invoice.account_number.clone(),
            amount: invoice.amount,
            applied_amount: if declined { 0.0 } else { invoice.amount },
            currency: invoice.currency.clone(),
            status: if declined { "Error" } else { "Processed" }.into(),
            gateway_response: if declined {
                card.gateway_response
                    .clone()
                    .unwrap_or_else(|| DEFAULT_DECLINE_MESSAGE.into())
            } else {
                "Approved".into()
            },
            gateway_response_code: if declined {
                card.gateway_response_code
                    .clone()
                    .unwrap_or_else(|| DEFAULT_DECLINE_CODE.into())
            } else {
                "00".into()
            },
            gateway_state: "Submitted".into(),
            effective_date: date_of(at),
            created_ms: at,
            invoice_id: invoice.id.clone(),
            invoice_number: invoice.invoice_number.clone(),
            subscription_number: sub.subscription_number.clone(),
        };
        d.payments.insert(payment.number.clone(), payment.clone());
        if !declined {
            if let Some(inv) = d.invoices.get_mut(&invoice.invoice_number) {
                inv.balance = cents(inv.balance - payment.amount).max(0.0);
                inv.payment_amount = cents(inv.payment_amount + payment.amount);
            }
        }
        let kind = if declined {
            "PaymentDeclined"
        } else {
            "PaymentProcessed"
        };
        let extra = json!({
            "invoiceId": invoice.id,
            "invoiceNumber": invoice.invoice_number,
            "amount": payment.amount,
            "currency": payment.currency,
            "paymentId": payment.id,
            "paymentNumber": payment.number,
            "paymentStatus": payment.status,
            "gatewayResponseCode": payment.gateway_response_code,
            "gatewayResponse": payment.gateway_response,
            "autoRenewal": auto_renewal,
            "billRunId": invoice.bill_run_id,
        });
        let account_id = invoice.account_id.clone();
        let mut feed = extra.clone();
        feed["subscriptionNumber"] = json!(sub.subscription_number);
        feed["accountNumber"] = json!(sub.account_number);
        if declined {
            feed["reason"] = json!("card_declined");
        }
        d.feed.push(at, kind, feed);
        let mut body = json!({
            "subscriptionNumber": sub.subscription_number,
            "subscriptionId": sub.id,
            "subscriptionVersion": sub.version,
            "accountNumber": sub.account_number,
            "accountId": account_id,
            "orderNumber": null,
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        self.callout(at, kind, &sub.id, body);
        payment
    }
}

fn render_invoice(i: &Invoice) -> Value {
    json!({
        "id": i.id,
        "invoiceNumber": i.invoice_number,
        "accountId": i.account_id,
        "amount": i.amount,
        "amountWithoutTax": i.amount,
        "taxAmount": 0.0,
        "taxExemptAmount": 0.0,
        "balance": i.balance,
        "paymentAmount": i.payment_amount,
        "creditMemoAmount": 0.0,
        "refundAmount": 0.0,
        "adjustmentAmount": 0.0,
        "currency": i.currency,
        "invoiceDate": i.invoice_date,
        "dueDate": i.due_date,
        "targetDate": i.target_date,
        "postedDate": i.invoice_date,
        "postedBy": "l2f-mock",
        "status": i.status,
        "billRunId": i.bill_run_id,
        "source": if i.bill_run_id.is_some() { "BillRun" } else { "API" },
        "sourceId": i.bill_run_id,
        "includesRecurring": true,
        "includesOneTime": false,
        "includesUsage": false,
        "createdDate": datetime_of(i.created_ms),
        "updatedDate": datetime_of(i.created_ms),
    })
}

fn render_item(i: &InvoiceItem, invoice: &Invoice) -> Value {
    json!({
        "id": i.id,
        "subscriptionId": i.subscription_id,
        "subscriptionName": i.subscription_name,
        "chargeName": i.charge_name,
        "chargeType": "Recurring",
        "chargeAmount": i.charge_amount,
        "chargeDate": datetime_of(invoice.created_ms),
        "productName": i.product_name,
        "sku": i.sku,
        "quantity": i.quantity,
        "unitPrice": i.unit_price,
        "unitOfMeasure": i.unit_of_measure,
        "serviceStartDate": i.service_start_date,
        "serviceEndDate": i.service_end_date,
        "taxAmount": 0.0,
        "balance": if invoice.balance == 0.0 { 0.0 } else { i.charge_amount },
        "processingType": "Charge",
        "productRatePlanId": i.product_rate_plan_id,
    })
}

fn render_payment(p: &Payment) -> Value {
    json!({
        "id": p.id,
        "number": p.number,
        "accountId": p.account_id,
        "accountNumber": p.account_number,
        "amount": p.amount,
        "appliedAmount": p.applied_amount,
        "unappliedAmount": 0.0,
        "refundAmount": 0.0,
        "creditBalanceAmount": 0.0,
        "currency": p.currency,
        "status": p.status,
        "type": "Electronic",
        "gatewayResponse": p.gateway_response,
        "gatewayResponseCode": p.gateway_response_code,
        "gatewayState": p.gateway_state,
        "effectiveDate": p.effective_date,
        "submittedOn": datetime_of(p.created_ms),
        "createdDate": datetime_of(p.created_ms),
        "updatedDate": datetime_of(p.created_ms),
        "paymentMethodId": format!("pm{:0>30}", &p.account_id.get(..8).unwrap_or("0")),
        "referenceId": if p.status == "Processed" { json!(format!("ch_{}", &p.id[..16])) } else { Value::Null },
        "authTransactionId": null,
        "cancelledOn": null,
        "comment": null,
        "gatewayId": null,
        "gatewayOrderId": null,
        "markedForSubmissionOn": null,
        "secondPaymentReferenceId": null,
        "settledOn": null,
        "standalone": false,
    })
}

fn find_invoice<'a>(d: &'a Data, key: &str) -> Option<&'a Invoice> {
    d.invoices
        .get(key)
        .or_else(|| d.invoices.values().find(|i| i.id == key))
}

fn find_payment<'a>(d: &'a Data, key: &str) -> Option<&'a Payment> {
    d.payments
        .get(key)
        .or_else(|| d.payments.values().find(|p| p.id == key))
}

/// `GET /v1/invoices/{invoiceKey}` (id or number).
pub(super) async fn get_invoice(
    State(app): State<Arc<Zuora>>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ZError> {
    app.shared.read(|d| {
        let i = find_invoice(d, &key).ok_or_else(|| {
            ZError::not_found(RES_INVOICE, format!("Invoice {key} does not exist."))
        })?;
        let mut v = render_invoice(i);
        v["success"] = json!(true);
        Ok(Json(v))
    })
}

#[derive(Deserialize)]
struct Paging {
    page: Option<usize>,
    #[serde(rename = "pageSize")]
    page_size: Option<usize>,
}

fn paging(raw: Option<&str>, res: u32) -> Result<(usize, usize), ZError> {
    let p: Paging = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ZError::invalid(res, format!("Invalid query: {e}")))?;
    let size = p.page_size.unwrap_or(20);
    if !(1..=40).contains(&size) {
        return Err(ZError::invalid(
            res,
            format!("Invalid value for field pageSize: {size}; it must be 1 to 40"),
        ));
    }
    Ok((p.page.unwrap_or(1).max(1), size))
}

/// One page of `rows` as `{key: [...], "success": true, "nextPage"?}`.
fn v1_page(
    rows: Vec<Value>,
    key: &str,
    page: usize,
    size: usize,
    next: impl Fn(usize) -> String,
) -> Value {
    let from = (page - 1).saturating_mul(size);
    let shown: Vec<Value> = rows.iter().skip(from).take(size).cloned().collect();
    let mut out = json!({ key: shown, "success": true });
    if from.saturating_add(size) < rows.len() {
        out["nextPage"] = json!(next(page + 1));
    }
    out
}

/// `GET /v1/invoices/{invoiceKey}/items?page=&pageSize=`.
pub(super) async fn invoice_items(
    State(app): State<Arc<Zuora>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    scheme: Option<axum::Extension<kit::Scheme>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ZError> {
    let (page, size) = paging(raw.as_deref(), RES_INVOICE)?;
    let rows = app.shared.read(|d| {
        let i = find_invoice(d, &key).ok_or_else(|| {
            ZError::not_found(RES_INVOICE, format!("Invoice {key} does not exist."))
        })?;
        Ok::<_, ZError>(
            i.items
                .iter()
                .map(|it| render_item(it, i))
                .collect::<Vec<_>>(),
        )
    })?;
    let base = base_url(&headers, scheme.map(|s| s.0));
    Ok(Json(v1_page(rows, "invoiceItems", page, size, |p| {
        format!("{base}/v1/invoices/{key}/items?page={p}&pageSize={size}")
    })))
}

/// `GET /v1/payments?accountId=&status=&number=&type=&currency=&amount=&page=&pageSize=`.
pub(super) async fn list_payments(
    State(app): State<Arc<Zuora>>,
    headers: HeaderMap,
    scheme: Option<axum::Extension<kit::Scheme>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ZError> {
    let (page, size) = paging(raw.as_deref(), RES_PAYMENT)?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ZError::invalid(RES_PAYMENT, format!("Invalid query: {e}")))?;
    let filters: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(k, _)| {
            [
                "accountId",
                "status",
                "number",
                "type",
                "currency",
                "amount",
            ]
            .contains(&k.as_str())
        })
        .collect();
    let rows: Vec<Value> = app.shared.read(|d| {
        d.payments
            .values()
            .map(render_payment)
            .filter(|p| {
                filters.iter().all(|(k, v)| match &p[k.as_str()] {
                    Value::String(s) => s == v,
                    Value::Number(n) => v.parse::<f64>().ok() == n.as_f64(),
                    _ => false,
                })
            })
            .collect()
    });
    let base = base_url(&headers, scheme.map(|s| s.0));
    let mut q: Vec<(String, String)> = filters.clone();
    q.push(("pageSize".into(), size.to_string()));
    Ok(Json(v1_page(rows, "payments", page, size, |p| {
        let mut q = q.clone();
        q.push(("page".into(), p.to_string()));
        format!(
            "{base}/v1/payments?{}",
            serde_urlencoded::to_string(&q).unwrap_or_default()
        )
    })))
}

/// `GET /v1/payments/{paymentKey}` (id or number).
pub(super) async fn get_payment(
    State(app): State<Arc<Zuora>>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ZError> {
    app.shared.read(|d| {
        let p = find_payment(d, &key).ok_or_else(|| {
            ZError::not_found(RES_PAYMENT, format!("Payment {key} does not exist."))
        })?;
        let mut v = render_payment(p);
        v["success"] = json!(true);
        Ok(Json(v))
    })
}

/// `GET /v1/payments/{paymentKey}/parts`: the invoice a payment was (to be) applied to.
pub(super) async fn payment_parts(
    State(app): State<Arc<Zuora>>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ZError> {
    app.shared.read(|d| {
        let p = find_payment(d, &key).ok_or_else(|| {
            ZError::not_found(RES_PAYMENT, format!("Payment {key} does not exist."))
        })?;
        let parts: Vec<Value> = if p.applied_amount > 0.0 {
            vec![json!({
                "id": format!("{}p", &p.id[..31]),
                "amount": p.applied_amount,
                "invoiceId": p.invoice_id,
                "debitMemoId": null,
                "createdDate": datetime_of(p.created_ms),
                "updatedDate": datetime_of(p.created_ms),
            })]
        } else {
            Vec::new()
        };
        Ok(Json(json!({ "parts": parts, "success": true })))
    })
}

/// `GET /v1/bill-runs/{billRunKey}` (id or number).
pub(super) async fn get_bill_run(
    State(app): State<Arc<Zuora>>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ZError> {
    app.shared.read(|d| {
        let r = d
            .bill_runs
            .get(&key)
            .or_else(|| d.bill_runs.values().find(|r| r.id == key))
            .ok_or_else(|| {
                ZError::not_found(RES_REQUEST, format!("Bill run {key} does not exist."))
            })?;
        Ok(Json(json!({
            "success": true,
            "id": r.id,
            "billRunNumber": r.bill_run_number,
            "name": format!("Auto-renewal {}", r.target_date),
            "batches": r.batches,
            "billCycleDay": "AllBillCycleDays",
            "autoEmail": false,
            "autoPost": true,
            "autoRenewal": true,
            "noEmailForZeroAmountInvoice": false,
            "status": "Posted",
            "invoiceDate": r.target_date,
            "targetDate": r.target_date,
            "chargeTypeToExclude": [],
            "createdDate": datetime_of(r.created_ms),
            "updatedDate": datetime_of(r.created_ms),
        })))
    })
}

/// One `filter[]` of an object query: `field.OP:value`.
fn object_filter(f: &str) -> Result<(String, String, String), ZError> {
    let bad = || ZError::BadRequest(format!("Invalid filter: {f}; use field.OPERATOR:value"));
    let (lhs, value) = f.split_once(':').ok_or_else(bad)?;
    let (field, op) = lhs.rsplit_once('.').ok_or_else(bad)?;
    let op = op.to_ascii_uppercase();
    if !["EQ", "NE", "LT", "GT", "LE", "GE", "SW", "IN"].contains(&op.as_str()) {
        return Err(bad());
    }
    Ok((field.to_string(), op, value.to_string()))
}

fn filter_hit(v: &Value, op: &str, want: &str) -> bool {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
    };
    let num = v.as_f64().zip(want.parse::<f64>().ok());
    match op {
        "EQ" => text == want || num.is_some_and(|(a, b)| a == b),
        "NE" => !(text == want || num.is_some_and(|(a, b)| a == b)),
        "SW" => text.starts_with(want),
        "IN" => want
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .any(|w| w.trim() == text),
        "LT" => num.map_or(text.as_str() < want, |(a, b)| a < b),
        "GT" => num.map_or(text.as_str() > want, |(a, b)| a > b),
        "LE" => num.map_or(text.as_str() <= want, |(a, b)| a <= b),
        _ => num.map_or(text.as_str() >= want, |(a, b)| a >= b),
    }
}

/// Object query over `rows` (`filter[]`, `pageSize` 1..50 default 10, `cursor`):
/// `{"data":[...],"nextPage":"<cursor>"}`; 400 for a bad filter or page size.
fn object_query(rows: Vec<Value>, raw: Option<&str>) -> Result<Json<Value>, ZError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ZError::BadRequest(format!("Invalid query: {e}")))?;
    let mut filters = Vec::new();
    let mut size = 10usize;
    let mut cursor = 0usize;
    for (k, v) in &pairs {
        match k.as_str() {
            "filter[]" | "filter" => filters.push(object_filter(v)?),
            "pageSize" => {
                size = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=50).contains(n))
                    .ok_or_else(|| {
                        ZError::BadRequest(format!("pageSize {v} must be between 1 and 50"))
                    })?
            }
            "cursor" => {
                cursor = base64::Engine::decode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    v.as_bytes(),
                )
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| ZError::BadRequest(format!("Invalid cursor: {v}")))?
            }
            _ => {}
        }
    }
    let matching: Vec<Value> = rows
        .into_iter()
        .filter(|r| {
            filters
                .iter()
                .all(|(f, op, want)| filter_hit(&r[f.as_str()], op, want))
        })
        .collect();
    let shown: Vec<Value> = matching.iter().skip(cursor).take(size).cloned().collect();
    let mut out = json!({ "data": shown });
    if cursor.saturating_add(size) < matching.len() {
        out["nextPage"] = json!(base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            (cursor + size).to_string()
        ));
    }
    Ok(Json(out))
}

fn expands(raw: Option<&str>, what: &str) -> bool {
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw.unwrap_or(""))
        .unwrap_or_default()
        .iter()
        .any(|(k, v)| {
            (k == "expand[]" || k == "expand")
                && v.split(',').any(|x| x.trim().eq_ignore_ascii_case(what))
        })
}

/// `GET /object-query/invoices?filter[]=accountId.EQ:<id>&expand[]=invoiceitems`.
pub(super) async fn query_invoices(
    State(app): State<Arc<Zuora>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ZError> {
    let with_items = expands(raw.as_deref(), "invoiceitems");
    let rows = app.shared.read(|d| {
        d.invoices
            .values()
            .map(|i| {
                let mut v = render_invoice(i);
                v["accountNumber"] = json!(i.account_number);
                if with_items {
                    v["invoiceItems"] = json!(i
                        .items
                        .iter()
                        .map(|it| render_item(it, i))
                        .collect::<Vec<_>>());
                }
                v
            })
            .collect()
    });
    object_query(rows, raw.as_deref())
}

/// `GET /object-query/payments?filter[]=accountId.EQ:<id>`.
pub(super) async fn query_payments(
    State(app): State<Arc<Zuora>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ZError> {
    let rows = app.shared.read(|d| {
        d.payments
            .values()
            .map(|p| {
                let mut v = render_payment(p);
                v["paymentNumber"] = v["number"].clone();
                v
            })
            .collect()
    });
    object_query(rows, raw.as_deref())
}

/// `POST /__admin/accounts/{key}/card` `{"declines": true, "gatewayResponseCode"?,
/// "gatewayResponse"?, "times"?}`: the account's card declines every payment from now on
/// (until `{"declines": false}`), or only the next `times` ones; `GET` shows it.
pub(super) async fn set_card(
    State(app): State<Arc<Zuora>>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ZError> {
    let body = parse_json(&body, RES_ACCOUNT)?;
    let declines = match body.get("declines") {
        Some(Value::Bool(b)) => *b,
        _ => return Err(ZError::missing(RES_ACCOUNT, "declines")),
    };
    let card = Card {
        declines,
        gateway_response_code: str_field(&body, "gatewayResponseCode").map(str::to_string),
        gateway_response: str_field(&body, "gatewayResponse").map(str::to_string),
        times: match body.get("times") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        ZError::invalid(RES_ACCOUNT, format!("Invalid value for field times: {v}"))
                    })?,
            ),
        },
    };
    app.shared.write(|d| {
        let number = super::find_account(d, &key)
            .map(|a| a.account_number.clone())
            .ok_or_else(|| {
                ZError::not_found(RES_ACCOUNT, format!("Cannot find entity by key: '{key}'."))
            })?;
        d.cards.insert(number.clone(), card.clone());
        Ok(Json(
            json!({ "success": true, "accountNumber": number, "card": card }),
        ))
    })
}

/// `GET /__admin/accounts/{key}/card`.
pub(super) async fn get_card(
    State(app): State<Arc<Zuora>>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ZError> {
    app.shared.read(|d| {
        let a = super::find_account(d, &key).ok_or_else(|| {
            ZError::not_found(RES_ACCOUNT, format!("Cannot find entity by key: '{key}'."))
        })?;
        let card = d.cards.get(&a.account_number).cloned().unwrap_or_default();
        Ok(Json(
            json!({ "success": true, "accountNumber": a.account_number, "card": card }),
        ))
    })
}
