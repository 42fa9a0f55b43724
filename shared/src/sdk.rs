//! The AWS SDK configuration the Lambda functions share: the SDK's own loader (region and
//! credentials from the environment Lambda sets, `AWS_ENDPOINT_URL` honoured), with an HTTPS
//! client that trusts the compiled-in roots ([`crate::tls`]) rather than scanning the
//! platform's certificate store at start.

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};

/// The SDK configuration for `api`, `ingest` and `deliver`.
pub async fn config() -> aws_config::SdkConfig {
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if crate::tls::native_roots() {
        return loader.load().await;
    }
    let store = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(crate::tls::webpki_roots_pem());
    match TlsContext::builder().with_trust_store(store).build() {
        Ok(context) => {
            let http = aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
                .tls_context(context)
                .build_https();
            loader.http_client(http).load().await
        }
        Err(e) => {
            tracing::warn!(error = %e, "compiled-in TLS roots refused; using the platform's");
            loader.load().await
        }
    }
}
