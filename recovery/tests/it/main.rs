//! The integration tests of `recovery`, one binary (`tests/it`): one link, one process to list.

mod booking_connectors;
mod bookings_e2e;
mod form_connectors;
mod local_binary;
mod openapi;
mod operations;
mod pipeline;
