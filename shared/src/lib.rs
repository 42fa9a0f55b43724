//! `hookline-core`: Hookline's domain, free of AWS, HTTP servers and databases.
//!
//! URNs and their index ([`urn`]), event types ([`event_type`]), the event envelope
//! ([`event`]), webhooks and their validation ([`webhook`]), Standard Webhooks signing
//! ([`signing`]), the retry policy ([`retry`]), the SSRF guard ([`target`]), the webhook
//! lifecycle (disable rules, suspensions, operational events: [`lifecycle`]) and the storage
//! and queue ports ([`ports`]). Contracts: `DESIGN.md`.
#![warn(missing_docs)]

pub mod auth;
pub mod event;
pub mod event_type;
pub mod filter;
#[cfg(feature = "http")]
pub mod http;
pub mod lifecycle;
pub mod millis;
pub mod ports;
pub mod queue;
pub mod retry;
pub mod rules;
#[cfg(feature = "aws")]
pub mod sdk;
pub mod signing;
pub mod store;
pub mod target;
#[cfg(any(feature = "aws", feature = "http"))]
pub mod tls;
pub mod urn;
pub mod validation;
pub mod webhook;
