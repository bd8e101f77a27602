//! The Weir client library: producers and consumers over QUIC.
