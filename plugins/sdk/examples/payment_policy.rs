//! A dead-letter policy: validation errors go to the DLQ at once, payments are
//! retried at most 3 times, obsolete messages are dropped, everything else is
//! retried after one second per attempt.

use std::time::Duration;

use weir_plugin_sdk::{Decision, Failure, dlq_policy, manifest};

manifest! {
    name = "payment_policy",
    version = "0.1.0",
    kind = "dlq-policy",
    description = "Validation errors to the DLQ, payments retried at most 3 times",
}

fn payment_policy(failure: &Failure) -> Decision {
    if failure.reason.starts_with("validation") {
        Decision::DeadLetter
    } else if failure.reason.starts_with("obsolete") {
        Decision::Discard
    } else if failure.message.property("kind") == Some("payment") && failure.attempt > 3 {
        Decision::DeadLetter
    } else {
        Decision::RetryAfter(Duration::from_secs(u64::from(failure.attempt)))
    }
}

dlq_policy!(payment_policy);
