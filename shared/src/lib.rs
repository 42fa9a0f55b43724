//! `hookline-core`: Hookline's domain, its ports, the services over them, and the adapters
//! behind features. Modules import in one direction (`docs/ARCHITECTURE.md`):
//!
//! 1. Values: [`timestamp`], [`validation`], [`config`], [`urn`], [`event_type`], [`event`],
//!    [`filter`], [`signing`], [`sealed`], [`destination`] (AWS destinations), [`retry`], [`target`], [`auth`], [`rules`],
//!    [`webhook`] (with its lifecycle state), [`outbound`], [`delivery`], [`operational`],
//!    [`grant`], [`telemetry`] (the metrics' vocabulary), [`stats`] (a webhook's health),
//!    [`retention`] (how long events and attempts are kept), [`job`] (background jobs).
//! 2. Ports: [`ports`], the traits, and the [`ports::Ports`] bundle a composition builds.
//! 3. Services over the ports: [`lifecycle`], [`reseal`], [`jobs`], `tokens` (OAuth2
//!    client-credentials tokens, with the `http` feature).
//! 4. Adapters: [`adapters`] (DynamoDB/SQS, SQLite, HTTP, Lambda, memory), behind features;
//!    `adapters::aws::AwsPorts` and `adapters::sqlite::ports` wire each composition.
#![warn(missing_docs)]

pub mod adapters;
pub mod auth;
pub mod config;
pub mod delivery;
pub mod destination;
pub mod event;
pub mod event_type;
pub mod filter;
pub mod grant;
pub mod job;
pub mod jobs;
pub mod lifecycle;
pub mod operational;
pub mod outbound;
pub mod ports;
pub mod reseal;
pub mod retention;
pub mod retry;
pub mod rules;
pub mod sealed;
pub mod signing;
pub mod stats;
pub mod target;
pub mod telemetry;
pub mod timestamp;
#[cfg(feature = "http")]
pub mod tokens;
pub mod urn;
pub mod validation;
pub mod webhook;
