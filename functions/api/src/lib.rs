//! Hookline's subscription API: the transport-free services ([`service`], [`intake`],
//! [`deliveries`]), the REST API over them ([`rest`]: one `axum` router, its OpenAPI document
//! generated from the handlers), the [`graphql`] API on the same router, who is calling
//! ([`auth`]), RFC 9457 [`problem`] responses, and the API Gateway edge in [`lambda`].
//! [`Api::from_ports`] wires it all over a composition's ports.
#![warn(missing_docs)]

pub mod admission;
pub mod auth;
pub mod console;
pub mod deliveries;
pub mod error;
pub mod graphql;
pub mod intake;
pub mod lambda;
pub mod problem;
pub mod recovery;
pub mod rest;
pub mod service;
pub mod settings;

pub use rest::Api;
