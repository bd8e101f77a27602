//! Weir storage engine.
