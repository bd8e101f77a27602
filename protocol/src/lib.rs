//! Weir wire protocol: a sans-IO codec for frames, requests and responses.
