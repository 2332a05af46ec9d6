//! Handlers: one async function per Lambda function, called alike by the Lambda
//! binaries, the local stack and the tests.

pub mod webhook_ingest;
