//! Multi-tenant region filtering: one `orders` topic carries orders from 10
//! regions; each region's billing service is its own consumer group that
//! subscribes with SQL92 `region = '<region>'` and receives only its region.
//!
//! The broker skips the other regions' orders on their per-message bloom
//! filters, without reading their bodies: the statistics printed at the end
//! show how few bodies were read.
//!
//! ```text
//! cargo run --release --example region_filter
//! ```
//!
//! It runs an embedded broker in a temporary directory; no setup needed.

#[path = "embedded/mod.rs"]
mod embedded;

use weir_client::{Message, Producer, PullConsumer, Subscription};

const REGIONS: [&str; 10] = ["SH", "BJ", "SZ", "GZ", "HZ", "CD", "WH", "XA", "NJ", "TJ"];
const ORDERS: usize = 20_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let embedded = embedded::start("orders", 4).await?;
    let client = embedded.client.clone();
    let producer = Producer::new(client.clone());
    let batch: Vec<Message> = (0..ORDERS)
        .map(|i| {
            let region = REGIONS[i % REGIONS.len()];
            let body = format!("{{\"order\":{i},\"region\":\"{region}\",\"lines\":[\"{}\"]}}", "x".repeat(200));
            let mut m = Message::new("orders", body);
            m.properties = vec![
                ("region".into(), region.into()),
                ("amount".into(), (i * 37 % 1000).to_string()),
                ("currency".into(), "CNY".into()),
            ];
            m
        })
        .collect();
    embedded::send_all(&client, &producer, "orders", batch).await?;
    println!("sent {ORDERS} orders from {} regions to topic `orders`", REGIONS.len());
    println!("{:<14}{:>10}{:>13}{:>14}{:>18}", "group", "delivered", "bodies read", "% of topic", "skipped by bloom");

    for region in REGIONS {
        let group = format!("billing-{region}");
        let mut consumer = PullConsumer::new(client.clone(), group.as_str());
        consumer.subscribe("orders", &Subscription::sql(format!("region = '{region}'"))).await?;
        let delivered = embedded::drain(&client, &consumer, "orders").await?;
        let strangers =
            delivered.iter().filter(|m| !m.properties.iter().any(|(k, v)| k == "region" && v == region)).count();
        if strangers > 0 || delivered.len() != ORDERS / REGIONS.len() {
            return Err(format!("{group} received {} orders, {strangers} from other regions", delivered.len()).into());
        }
        let stats = client.group_stats(&group, Some("orders")).await?;
        let c = stats.first().ok_or("no statistics")?.counters;
        println!(
            "{group:<14}{:>10}{:>13}{:>13.2}%{:>18}",
            c.delivered,
            c.body_reads,
            100.0 * c.body_reads as f64 / c.examined as f64,
            c.skipped_by_bloom
        );
    }
    println!("every group received exactly its region's orders");
    producer.close().await;
    embedded.shutdown().await?;
    Ok(())
}
