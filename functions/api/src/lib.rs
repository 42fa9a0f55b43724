//! Hookline's subscription API: the transport-free [`service`], the REST [`routes`] over it
//! (one `axum` router, its OpenAPI document generated from the handlers), the [`graphql`] API
//! on the same router, who is calling ([`auth`]), RFC 9457 [`problem`] responses, and the
//! API Gateway edge in [`lambda`].
#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod console;
pub mod deliveries;
pub mod graphql;
pub mod intake;
pub mod lambda;
pub mod problem;
pub mod routes;
pub mod service;
