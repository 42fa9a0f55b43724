//! The adapters: the ports implemented on real systems, each behind the cargo feature that
//! brings its dependencies. Nothing outside this folder imports from it but the compositions
//! (the three Lambda `main.rs`, `hookline serve`, the tests and the benchmarks).
//!
//! - [`aws`] (`aws`): DynamoDB and SQS, and [`aws::AwsPorts`], the AWS composition's wiring.
//! - [`sqlite`] (`sqlite`): every port on one SQLite file, and [`sqlite::ports`], the
//!   embedded composition's wiring.
//! - [`http`] (`http`): outbound HTTP on reqwest, with the target guard at connect time.
//! - [`lambda`] (`lambda-sqs`): Lambda's SQS event and batch response shapes.
//! - [`emf`] (`emf`): the Lambdas' metrics as CloudWatch Embedded Metric Format lines.
//! - [`memory`]: the in-process rate limiter.
//! - [`record`]: the stored webhook document both stores share.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "emf")]
pub mod emf;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "lambda-sqs")]
pub mod lambda;
pub mod memory;
pub mod record;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(any(feature = "aws", feature = "http"))]
pub mod tls;
