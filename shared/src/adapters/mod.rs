//! Implementations of the ports: AWS services and HTTP APIs for production (feature
//! `clients`, on by default), in-memory ones for the local stack, fakes for tests.

#[cfg(feature = "clients")]
pub mod aws;
#[cfg(feature = "clients")]
pub mod crm;
#[cfg(feature = "clients")]
pub mod dynamo;
#[cfg(any(test, feature = "test-util"))]
pub mod fakes;
pub mod memory;
#[cfg(feature = "clients")]
pub mod skipup;
#[cfg(feature = "clients")]
pub mod sns;
#[cfg(feature = "clients")]
pub mod sqs;
