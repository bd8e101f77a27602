//! SQL92 subscription expressions (RocketMQ-compatible): parse, compile, evaluate.
