//! The product catalog: `GET /v1/catalog/products` and `GET /v1/catalog/products/{key}`
//! in the shape of Zuora's "List all products" / "Retrieve a product" (legacy Catalog
//! API): `products[]` with `id`, `sku`, `name`, `effectiveStartDate`,
//! `effectiveEndDate`, `productRatePlans[]` (`id`, `name`, `status`,
//! `productRatePlanCharges[]` with `type`, `model`, `uom`, `pricing[]`,
//! `pricingSummary`), and `nextPage` while there are more.
//! https://developer.zuora.com/v1-api-reference/api/operation/GET_Catalog/

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{base_url, ZError, Zuora, RES_CATALOG};

/// A product of the catalog (one per SKU).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// The SKU, e.g. `premium-saas-1y`.
    pub sku: String,
    /// The product's name.
    pub name: String,
    /// First day it can be sold (`YYYY-MM-DD`).
    #[serde(default = "always_from")]
    pub effective_start_date: String,
    /// Last day it can be sold.
    #[serde(default = "always_until")]
    pub effective_end_date: String,
    /// Its rate plans (one per SKU here).
    pub rate_plans: Vec<ProductRatePlan>,
}

/// A product rate plan with its one per-unit charge.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProductRatePlan {
    /// The id orders subscribe to (`prp-premium-saas`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Price per unit for the billing period.
    pub unit_price: f64,
    /// Unit of measure (`Seat`, `Pack`).
    #[serde(default = "seat")]
    pub uom: String,
    /// ISO currency of the price.
    #[serde(default = "usd")]
    pub currency: String,
}

fn always_from() -> String {
    "2020-01-01".into()
}
fn always_until() -> String {
    "2099-12-31".into()
}
fn seat() -> String {
    "Seat".into()
}
fn usd() -> String {
    "USD".into()
}

/// The default catalog: the SKUs the customers app sells, at its prices.
pub fn default_products() -> Vec<Product> {
    let product = |sku: &str, name: &str, prp: &str, plan: &str, price: f64, uom: &str| Product {
        sku: sku.into(),
        name: name.into(),
        effective_start_date: always_from(),
        effective_end_date: always_until(),
        rate_plans: vec![ProductRatePlan {
            id: prp.into(),
            name: plan.into(),
            unit_price: price,
            uom: uom.into(),
            currency: usd(),
        }],
    };
    vec![
        product(
            "premium-saas-1y",
            "Premium SaaS",
            "prp-premium-saas",
            "Premium SaaS - 1 Year",
            29.0,
            "Seat",
        ),
        product(
            "ultimate-saas-1y",
            "Ultimate SaaS",
            "prp-ultimate-saas",
            "Ultimate SaaS - 1 Year",
            99.0,
            "Seat",
        ),
        product(
            "premium-self-managed-1y",
            "Premium Self-Managed",
            "prp-premium-self-managed",
            "Premium Self-Managed - 1 Year",
            29.0,
            "Seat",
        ),
        product(
            "ultimate-self-managed-1y",
            "Ultimate Self-Managed",
            "prp-ultimate-self-managed",
            "Ultimate Self-Managed - 1 Year",
            99.0,
            "Seat",
        ),
        product(
            "ci-minutes-1000",
            "CI Minutes",
            "prp-ci-minutes",
            "Compute Minutes Add-on",
            10.0,
            "Pack",
        ),
    ]
}

/// A stable 32-hex id for a catalog object named `key`.
fn object_id(kind: &str, key: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (kind, key).hash(&mut h);
    let a = h.finish();
    (key, kind).hash(&mut h);
    format!("{a:016x}{:016x}", h.finish())
}

fn render(p: &Product) -> Value {
    let plans: Vec<Value> = p
        .rate_plans
        .iter()
        .map(|rp| {
            json!({
                "id": rp.id,
                "status": "Active",
                "name": rp.name,
                "description": "",
                "effectiveStartDate": p.effective_start_date,
                "effectiveEndDate": p.effective_end_date,
                "productRatePlanNumber": null,
                "productRatePlanCharges": [{
                    "id": object_id("charge", &rp.id),
                    "name": format!("{} - per {}", rp.name, rp.uom),
                    "type": "Recurring",
                    "model": "PerUnit",
                    "uom": rp.uom,
                    "pricingSummary": [format!("{}{}/{}", rp.currency, rp.unit_price, rp.uom)],
                    "pricing": [{
                        "currency": rp.currency,
                        "price": rp.unit_price,
                        "tiers": null,
                        "includedUnits": null,
                        "overagePrice": null,
                        "discountPercentage": null,
                        "discountAmount": null
                    }],
                    "defaultQuantity": 1,
                    "billingPeriod": "Annual",
                    "billingTiming": "IN_ADVANCE",
                    "listPriceBase": "Per_Billing_Period",
                    "endDateCondition": "Subscription_End"
                }]
            })
        })
        .collect();
    json!({
        "id": object_id("product", &p.sku),
        "sku": p.sku,
        "name": p.name,
        "description": "",
        "category": "Base Products",
        "effectiveStartDate": p.effective_start_date,
        "effectiveEndDate": p.effective_end_date,
        "productNumber": null,
        "allowFeatureChanges": false,
        "productRatePlans": plans,
        "productFeatures": []
    })
}

#[derive(Deserialize)]
struct Paging {
    page: Option<usize>,
    #[serde(rename = "pageSize")]
    page_size: Option<usize>,
}

/// `GET /v1/catalog/products?page=&pageSize=` (pageSize 1..=40, default 10).
pub(super) async fn list(
    State(app): State<Arc<Zuora>>,
    headers: HeaderMap,
    scheme: Option<axum::Extension<crate::kit::Scheme>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ZError> {
    let p: Paging = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ZError::invalid(RES_CATALOG, format!("Invalid query: {e}")))?;
    let size = p.page_size.unwrap_or(10);
    if !(1..=40).contains(&size) {
        return Err(ZError::invalid(
            RES_CATALOG,
            format!("Invalid value for field pageSize: {size}; it must be 1 to 40"),
        ));
    }
    let page = p.page.unwrap_or(1).max(1);
    let all = &app.cfg.products;
    let start = (page - 1).saturating_mul(size);
    let products: Vec<Value> = all.iter().skip(start).take(size).map(render).collect();
    let mut out = json!({ "products": products, "success": true });
    if start.saturating_add(size) < all.len() {
        out["nextPage"] = json!(format!(
            "{}/v1/catalog/products?page={}&pageSize={size}",
            base_url(&headers, scheme.map(|s| s.0)),
            page + 1
        ));
    }
    Ok(Json(out))
}

/// `GET /v1/catalog/products/{product-key}`: one product by id or SKU.
pub(super) async fn one(
    State(app): State<Arc<Zuora>>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ZError> {
    app.cfg
        .products
        .iter()
        .find(|p| p.sku == key || object_id("product", &p.sku) == key)
        .map(|p| {
            let mut v = render(p);
            v["success"] = json!(true);
            Json(v)
        })
        .ok_or_else(|| ZError::not_found(RES_CATALOG, format!("Product {key} does not exist.")))
}

/// The name, unit price and currency of a product rate plan, if the catalog has it.
pub(super) fn rate_plan<'a>(products: &'a [Product], id: &str) -> Option<&'a ProductRatePlan> {
    products
        .iter()
        .flat_map(|p| p.rate_plans.iter())
        .find(|rp| rp.id == id)
}

/// The product and product rate plan of a product rate plan id, if the catalog has it.
pub(super) fn product_of<'a>(
    products: &'a [Product],
    id: &str,
) -> Option<(&'a Product, &'a ProductRatePlan)> {
    products
        .iter()
        .find_map(|p| p.rate_plans.iter().find(|rp| rp.id == id).map(|rp| (p, rp)))
}
