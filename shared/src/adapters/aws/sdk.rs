//! The AWS SDK configuration the Lambda functions share, built for a short cold start:
//!
//! - In Lambda's environment (`AWS_REGION` and `AWS_ACCESS_KEY_ID` set), region and
//!   credentials come straight from it, without the SDK's loader walking its provider chains
//!   and profile files (2 ms of every init). `AWS_ENDPOINT_URL` is honoured; the loader's other
//!   settings (per-service endpoint variables, `AWS_MAX_ATTEMPTS`, FIPS, ...) are not read
//!   there. Elsewhere, the SDK's loader.
//! - The HTTPS client trusts the compiled-in roots ([`crate::adapters::tls`]) and builds its TLS
//!   configuration on the first request, once for every client, instead of once per client at
//!   construction (which the SDK's client does to load native certificates early; with roots
//!   of our own it parsed them again for each client, 1 ms each).

use std::sync::{Arc, OnceLock};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_async::rt::sleep::{SharedAsyncSleep, TokioSleep};
use aws_smithy_async::time::{SharedTimeSource, SystemTimeSource};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::shared::IntoShared;

/// The SDK configuration for `api`, `ingest` and `deliver`.
pub async fn config() -> SdkConfig {
    let native = crate::adapters::tls::native_roots();
    let lambda = (
        std::env::var("AWS_REGION"),
        std::env::var("AWS_ACCESS_KEY_ID"),
    );
    match lambda {
        (Ok(region), Ok(_)) if !native => lambda_config(region),
        _ if native => aws_config::defaults(BehaviorVersion::latest()).load().await,
        _ => {
            aws_config::defaults(BehaviorVersion::latest())
                .http_client(compiled_roots_client())
                .load()
                .await
        }
    }
}

/// Region and credentials from Lambda's environment variables, the compiled-in roots.
fn lambda_config(region: String) -> SdkConfig {
    let credentials = aws_config::environment::EnvironmentVariableCredentialsProvider::new();
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(compiled_roots_client())
        .sleep_impl(SharedAsyncSleep::new(TokioSleep::new()))
        .time_source(SharedTimeSource::new(SystemTimeSource::new()))
        .retry_config(aws_config::retry::RetryConfig::standard());
    if let Ok(url) = std::env::var("AWS_ENDPOINT_URL") {
        config = config.endpoint_url(url);
    }
    config.build()
}

/// The SDK's hyper client over rustls with the compiled-in roots, built on first use.
fn compiled_roots_client() -> SharedHttpClient {
    LazyHttpsClient::default().into_shared()
}

/// Builds the HTTPS client (and parses the roots) when the first connector is asked for, and
/// builds none to validate a client's configuration.
#[derive(Debug, Default, Clone)]
struct LazyHttpsClient {
    inner: Arc<OnceLock<SharedHttpClient>>,
}

impl LazyHttpsClient {
    fn client(&self) -> &SharedHttpClient {
        self.inner.get_or_init(|| {
            let builder =
                aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
            let store = TrustStore::empty()
                .with_native_roots(false)
                .with_pem_certificate(crate::adapters::tls::webpki_roots_pem());
            match TlsContext::builder().with_trust_store(store).build() {
                Ok(context) => builder.tls_context(context).build_https(),
                Err(e) => {
                    tracing::warn!(error = %e, "compiled-in TLS roots refused; using the platform's");
                    builder.build_https()
                }
            }
        })
    }
}

impl HttpClient for LazyHttpsClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.client().http_connector(settings, components)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lazy_client_builds_nothing_until_asked_for_a_connector() {
        let lazy = LazyHttpsClient::default();
        let _shared: SharedHttpClient = lazy.clone().into_shared();
        assert!(lazy.inner.get().is_none());
    }
}
