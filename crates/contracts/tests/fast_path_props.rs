//! Property test: for arbitrary records, the typed fast path writes the same bytes as the
//! schema-driven encoder (serde_avro_fast over the .avsc), and reads them back unchanged.

use chrono::{NaiveDate, TimeZone, Utc};
use l2f_contracts::events::*;
use l2f_contracts::fast::Reader;
use l2f_contracts::Catalog;
use proptest::prelude::*;
use rust_decimal::Decimal;
use uuid::Uuid;

fn slow_bytes<E: Event>(e: &E) -> Vec<u8> {
    let schema: serde_avro_fast::Schema = Catalog::embedded()
        .get(E::NAME)
        .unwrap()
        .to_full_json()
        .to_string()
        .parse()
        .unwrap();
    serde_avro_fast::to_datum(
        e,
        Vec::new(),
        &mut serde_avro_fast::ser::SerializerConfig::new(&schema),
    )
    .unwrap()
}

fn check<E: Event>(e: &E) {
    let mut fast = Vec::new();
    e.encode(&mut fast);
    assert_eq!(fast, slow_bytes(e));
    let mut r = Reader::new(&fast);
    assert_eq!(&E::decode(&mut r).unwrap(), e);
    assert!(r.at_end());
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (
        any::<u128>(),
        -62_135_596_800_000i64..253_402_300_799_999,
        0usize..7,
        any::<u128>(),
        proptest::option::of(any::<u128>()),
    )
        .prop_map(|(id, ms, src, corr, cause)| Envelope {
            event_id: Uuid::from_u128(id),
            occurred_at: Utc.timestamp_millis_opt(ms).unwrap(),
            source: SourceSystem::VARIANTS[src],
            correlation_id: Uuid::from_u128(corr),
            causation_id: cause.map(Uuid::from_u128),
        })
}

fn money() -> impl Strategy<Value = Money> {
    (0i64..=999_999_999_999_999_999, "[A-Z]{3}").prop_map(|(cents, currency)| Money {
        amount: Decimal::new(cents, 2),
        currency,
    })
}

fn date() -> impl Strategy<Value = NaiveDate> {
    (-700_000i32..2_900_000).prop_map(|d| avro_date::from_days(d).unwrap())
}

fn country() -> impl Strategy<Value = CountryCode> {
    (0u8..249).prop_map(|i| CountryCode::from_index(i).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn lead_captured(env in envelope(), s in "\\PC{0,40}", opt in proptest::option::of("\\PC{0,20}"),
                     c in proptest::option::of(country()), src in 0usize..5, b in any::<bool>()) {
        check(&LeadCaptured {
            envelope: env,
            lead_id: s.clone(),
            email: s.clone(),
            first_name: opt.clone(),
            last_name: opt.clone(),
            company: None,
            country: c,
            lead_source: LeadSource::VARIANTS[src],
            marketing_opt_in: b,
            utm_campaign: opt,
        });
    }

    #[test]
    fn order_placed(env in envelope(), s in "\\PC{0,30}", lines in proptest::collection::vec((".{0,10}", any::<i32>(), money()), 0..40),
                    total in money(), start in date(), end in date(), c in country(), ch in 0usize..5,
                    reseller in proptest::option::of((".{0,10}", any::<bool>()))) {
        check(&OrderPlaced {
            envelope: env,
            order_id: s.clone(),
            account_id: s.clone(),
            sales_channel: SalesChannel::VARIANTS[ch],
            deployment: Deployment::SelfManaged,
            order_type: OrderType::AddOn,
            reseller: reseller.map(|(name, authorized)| Reseller { name, authorized }),
            bill_to_country: c,
            sold_to_email: s,
            lines: lines.into_iter().map(|(sku, quantity, unit_price)| OrderLine { sku, quantity, unit_price }).collect(),
            total,
            term_start: start,
            term_end: end,
            auto_renew: true,
        });
    }

    #[test]
    fn usage_reported(env in envelope(), a in any::<i32>(), b in any::<i32>(), c in any::<i32>(), d in date()) {
        check(&UsageReported {
            envelope: env,
            subscription_id: "s".into(),
            account_id: "a".into(),
            measured_on: d,
            active_users: a,
            billable_users: b,
            seats: c,
        });
    }
}
