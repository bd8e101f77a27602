//! Splitting a batch of messages into `Send` requests that fit the frame limit.
//!
//! Protocol README §6: a batch larger than the frame limit must be split by the client.
//! The encoded sizes below follow the `Message` layout of README §5.2 exactly.

use weir_protocol::{Delivery, Message};

/// The `u32` message count in front of a `Send` payload.
const SEND_HEADER_LEN: usize = 4;

/// Bytes `message` takes in a `Send` payload.
pub(crate) fn encoded_len(message: &Message) -> usize {
    let string = |s: &str| 2 + s.len();
    let topic = string(&message.topic);
    let queue_id = 1 + message.queue_id.map_or(0, |_| 4);
    let tag = 1 + message.tag.as_deref().map_or(0, string);
    let keys = 4 + message.keys.iter().map(|key| string(key)).sum::<usize>();
    let properties = 4 + message.properties.iter().map(|(name, value)| string(name) + string(value)).sum::<usize>();
    let flags_and_born = 4 + 8;
    let delivery = match message.delivery {
        Delivery::Immediate => 1,
        Delivery::DelayLevel(_) => 2,
        Delivery::DeliverAtMs(_) => 9,
    };
    let body = 4 + message.body.len();
    topic + queue_id + tag + keys + properties + flags_and_born + delivery + body
}

/// Splits `messages`, in order, into runs whose `Send` payload is at most
/// `max_payload` bytes. A message too large on its own gets a run of its own, for the
/// broker to refuse with its size error.
pub(crate) fn split(messages: Vec<Message>, max_payload: usize) -> Vec<Vec<Message>> {
    let mut runs: Vec<Vec<Message>> = Vec::new();
    let mut run_len = SEND_HEADER_LEN;
    for message in messages {
        let len = encoded_len(&message);
        match runs.last_mut() {
            Some(run) if run_len + len <= max_payload => {
                run_len += len;
                run.push(message);
            }
            _ => {
                run_len = SEND_HEADER_LEN + len;
                runs.push(vec![message]);
            }
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU8;

    use proptest::prelude::*;
    use weir_protocol::bytes::BytesMut;
    use weir_protocol::{HEADER_LEN, Request, SendRequest};

    use super::*;

    fn payload_len(messages: &[Message]) -> usize {
        let mut frame = BytesMut::new();
        Request::Send(SendRequest { messages: messages.to_vec() }).encode(&mut frame).unwrap();
        frame.len() - HEADER_LEN
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        (
            "[a-z]{0,8}",
            proptest::option::of(any::<u32>()),
            proptest::option::of("\\PC{0,6}"),
            proptest::collection::vec("\\PC{0,6}", 0..3),
            proptest::collection::vec(("[a-z]{0,4}", "\\PC{0,6}"), 0..3),
            prop_oneof![
                Just(Delivery::Immediate),
                (1..=18u8).prop_map(|level| Delivery::DelayLevel(NonZeroU8::new(level).unwrap())),
                any::<u64>().prop_map(Delivery::DeliverAtMs),
            ],
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(topic, queue_id, tag, keys, properties, delivery, body)| {
                let mut message = Message::new(topic, body);
                message.queue_id = queue_id;
                message.tag = tag;
                message.keys = keys;
                message.properties = properties;
                message.delivery = delivery;
                message
            })
    }

    proptest! {
        #[test]
        fn encoded_len_matches_the_codec(message in arb_message()) {
            prop_assert_eq!(encoded_len(&message), payload_len(std::slice::from_ref(&message)) - SEND_HEADER_LEN);
        }

        #[test]
        fn runs_fit_keep_order_and_lose_nothing(
            messages in proptest::collection::vec(arb_message(), 0..20),
            max_payload in 40..400usize,
        ) {
            let runs = split(messages.clone(), max_payload);
            for run in &runs {
                prop_assert!(!run.is_empty());
                prop_assert!(run.len() == 1 || payload_len(run) <= max_payload);
            }
            // Greedy: the next run's first message would not have fit in the run before.
            for pair in runs.windows(2) {
                let mut joined = pair[0].clone();
                joined.push(pair[1][0].clone());
                prop_assert!(payload_len(&joined) > max_payload);
            }
            prop_assert_eq!(runs.concat(), messages);
        }
    }
}
