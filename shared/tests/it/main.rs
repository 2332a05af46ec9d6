//! The integration tests of `shared`, one binary (`tests/it`): one link, one process to list.

mod apply_events;
mod architecture;
mod checks_over_the_wire;
mod crm_connectors;
mod crm_hubspot;
mod crm_salesforce;
mod dependencies;
mod dynamo_store;
mod recovery_check;
mod skipup_client;
mod sqs_adapter;
mod template;
