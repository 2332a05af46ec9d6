//! The `recovery` operator CLI: the whole pipeline on one machine (`local`, `demo`)
//! and signed sample deliveries for any stack (`simulate`).

pub mod demo;
pub mod inbox;
pub mod simulate;
pub mod stack;
