//! The `recovery` operator CLI: the whole pipeline on one machine (`local`, `demo`)
//! and signed sample deliveries for any stack (`simulate`).

pub mod backfill;
pub mod demo;
pub mod dlq;
pub mod inbox;
pub mod ops;
pub mod report;
pub mod secrets;
pub mod simulate;
pub mod stack;
