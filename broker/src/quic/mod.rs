//! The QUIC front door: the quinn driver (`server`), one request to one core call
//! and back (`handler`), the conversions between wire and core types
//! (`convert`), and pull pages encoded from records (`page`).

mod convert;
mod handler;
mod page;
mod server;

pub use server::{bind, serve};
