//! A dead-letter policy for payments: a validation error goes to the DLQ at
//! once (retrying cannot fix it), a payment is retried at most `max_attempts`
//! times (default 3) with a growing delay, other messages follow a gentler
//! schedule of up to 16 attempts.

use std::time::Duration;

use weir_plugin_sdk::{Decision, Failure, dlq_policy, manifest, param};

manifest! {
    name = "payment_dlq_policy",
    version = "0.1.0",
    kind = "dlq-policy",
    description = "Validation errors to the DLQ; payments retried at most max_attempts (3) times",
    param = "max_attempts: retries of a payment before the DLQ (default 3)",
}

fn payment_dlq_policy(failure: &Failure) -> Decision {
    let payment = failure.message.property("kind") == Some("payment");
    let max_attempts: u32 = param("max_attempts").and_then(|v| v.parse().ok()).unwrap_or(3);
    if failure.reason.starts_with("validation") {
        Decision::DeadLetter
    } else if payment && failure.attempt > max_attempts {
        Decision::DeadLetter
    } else if payment {
        Decision::RetryAfter(Duration::from_secs(5 * u64::from(failure.attempt)))
    } else if failure.attempt > 16 {
        Decision::DeadLetter
    } else {
        Decision::RetryAfter(Duration::from_secs(30))
    }
}

dlq_policy!(payment_dlq_policy);
