//! The Weir broker: QUIC endpoint, request handlers, topics, offsets, long polling.
