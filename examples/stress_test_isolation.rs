//! Full-link stress-test isolation: production and shadow (stress-test)
//! orders share the `orders` topic. Shadow orders carry `shadow=true`
//! ([`weir_client::mark_shadow`]). Production groups never receive them;
//! a group declared shadow receives only them, with no filter to write.
//!
//! The broker keeps the shadow flag in its bloom index, so the production
//! group skips shadow traffic without reading bodies.
//!
//! ```text
//! cargo run --release --example stress_test_isolation
//! ```
//!
//! It runs an embedded broker in a temporary directory; no setup needed.

#[path = "embedded/mod.rs"]
mod embedded;

use weir_client::{Message, Producer, PullConsumer, Subscription, mark_shadow};

const ORDERS: usize = 10_000;
/// Every 4th order is stress-test traffic.
const SHADOW_EVERY: usize = 4;

fn is_shadow(m: &weir_client::StoredMessage) -> bool {
    m.properties.iter().any(|(k, v)| k == weir_client::SHADOW_PROPERTY && v == "true")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let embedded = embedded::start("orders", 4).await?;
    let client = embedded.client.clone();
    let producer = Producer::new(client.clone());
    let batch: Vec<Message> = (0..ORDERS)
        .map(|i| {
            let mut m = Message::new("orders", format!("{{\"order\":{i}}}"));
            m.properties = vec![("region".into(), "SH".into())];
            if (i + 1) % SHADOW_EVERY == 0 {
                mark_shadow(&mut m);
            }
            m
        })
        .collect();
    embedded::send_all(&client, &producer, "orders", batch).await?;
    let shadow_sent = ORDERS / SHADOW_EVERY;
    println!("sent {ORDERS} orders, {shadow_sent} of them stress-test (shadow) traffic");

    // The production group subscribes as usual: shadow traffic never reaches it.
    let mut billing = PullConsumer::new(client.clone(), "billing");
    billing.subscribe("orders", &Subscription::sql("region = 'SH'")).await?;
    // The stress-test copy of the service declares its group shadow: same subscription, only shadow traffic.
    let mut shadow_billing = PullConsumer::new(client.clone(), "billing-shadow");
    shadow_billing.subscribe("orders", &Subscription::sql("region = 'SH'").shadow()).await?;

    let production = embedded::drain(&client, &billing, "orders").await?;
    let shadow = embedded::drain(&client, &shadow_billing, "orders").await?;
    if production.iter().any(is_shadow) || production.len() != ORDERS - shadow_sent {
        let leaked = production.iter().filter(|m| is_shadow(m)).count();
        return Err(format!(
            "the production group received {} orders, {leaked} of them stress-test traffic",
            production.len()
        )
        .into());
    }
    if !shadow.iter().all(is_shadow) || shadow.len() != shadow_sent {
        return Err("the shadow group received production traffic".into());
    }
    for group in ["billing", "billing-shadow"] {
        let stats = client.group_stats(group, Some("orders")).await?;
        let c = stats.first().ok_or("no statistics")?.counters;
        println!(
            "{group:<16} delivered {:>6}, skipped_shadow {:>6}, bodies read {:>6} of {} examined",
            c.delivered, c.skipped_shadow, c.body_reads, c.examined
        );
    }
    println!("production and stress-test traffic stayed apart");
    producer.close().await;
    embedded.shutdown().await?;
    Ok(())
}
