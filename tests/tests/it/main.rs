//! The workspace's integration tests, one binary (linking the AWS SDK once), one module per topic.

mod api_routes;
mod architecture;
mod backpressure;
mod bad_input;
mod bootstrap_moto;
mod chaos;
mod chaos_moto;
mod console;
mod console_browser;
mod crash;
mod deliver_retries;
mod e2e_moto;
mod graphql;
mod ingest_fanout;
mod lambda_api_events;
mod lifecycle;
mod metrics;
mod queue_groups;
mod rules;
mod sealed_at_rest;
mod secrets;
mod serve_events;
mod settings;
mod template;
mod tokens;
mod webhook_store_conformance;
