//! Trust roots for outbound TLS (deliveries, URL checks, AWS): Mozilla's, compiled in
//! (`webpki-root-certs`), so starting a process reads and parses no certificate files (that
//! took 6 ms of every Lambda cold start). `HOOKLINE_NATIVE_ROOTS=true` trusts the platform's
//! store instead, for endpoints behind a private CA.

/// Whether `HOOKLINE_NATIVE_ROOTS` asks for the platform's certificate store.
/// Read with the one flag parser ([`crate::config::parse_flag`]); a value it cannot read is
/// logged and taken as false (the compiled-in roots).
pub fn native_roots() -> bool {
    match std::env::var("HOOKLINE_NATIVE_ROOTS") {
        Err(_) => false,
        Ok(v) => crate::config::parse_flag(&v).unwrap_or_else(|problem| {
            tracing::warn!(%problem, "HOOKLINE_NATIVE_ROOTS: using the compiled-in roots");
            false
        }),
    }
}

/// Mozilla's root certificates, DER.
pub fn webpki_roots() -> impl Iterator<Item = &'static [u8]> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|c| c.as_ref())
}

/// Mozilla's root certificates as one PEM bundle (what the AWS SDK's trust store takes).
#[cfg(feature = "aws")]
pub fn webpki_roots_pem() -> Vec<u8> {
    use base64::Engine;
    let mut pem = Vec::with_capacity(256 * 1024);
    for der in webpki_roots() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_roots_are_there() {
        assert!(webpki_roots().count() > 100);
        #[cfg(feature = "aws")]
        {
            let pem = String::from_utf8(webpki_roots_pem()).expect("ascii");
            assert_eq!(
                pem.matches("-----BEGIN CERTIFICATE-----").count(),
                webpki_roots().count()
            );
        }
    }
}
