//! Implementations of the ports: AWS services for production, in-memory ones for the
//! local stack, fakes for tests.

pub mod aws;
pub mod crm;
pub mod dynamo;
#[cfg(any(test, feature = "test-util"))]
pub mod fakes;
pub mod memory;
pub mod sns;
pub mod sqs;
