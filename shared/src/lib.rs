//! The lead recovery pipeline's shared library: domain types, webhook signature
//! crypto, ports with their AWS and in-memory adapters, and the handlers that the
//! Lambda binaries and the local stack call.

pub mod adapters;
pub mod config;
pub mod connectors;
pub mod crm;
pub mod form;
pub mod handlers;
pub mod inbound;
pub mod intake;
pub mod lead;
pub mod lifecycle;
pub mod metrics;
pub mod pacing;
pub mod ports;
pub mod recovery;
pub mod report;
pub mod sampling;
pub mod signature;
pub mod skipup;
pub mod suppression;
pub mod update;
