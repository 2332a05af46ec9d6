//! The integration tests of `webhook-ingest`, one binary (`tests/it`): one link, one process to list.

mod handler;
mod lambda_binary;
mod sample_events;
