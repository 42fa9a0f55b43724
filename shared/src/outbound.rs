//! What Hookline sends to an endpoint and what comes back: the request, the answer (read to
//! at most [`MAX_RESPONSE_BYTES`]) and the ways a send fails.

use std::time::Duration;

/// Largest part of an endpoint's answer that is read .
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// HTTP methods Hookline sends to endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundMethod {
    /// Verification probe.
    Head,
    /// Deliveries and signed test events.
    Post,
}

/// One request to an endpoint.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    /// HEAD or POST.
    pub method: OutboundMethod,
    /// The endpoint.
    pub url: crate::webhook::WebhookUrl,
    /// Headers in order: Standard Webhooks headers, then custom ones.
    pub headers: Vec<(String, String)>,
    /// The body (empty for HEAD).
    pub body: Vec<u8>,
    /// Total time allowed, connect included.
    pub timeout: Duration,
}

/// What an endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundResponse {
    /// HTTP status.
    pub status: u16,
    /// Its `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The first [`MAX_RESPONSE_BYTES`] of the body, lossily decoded.
    pub body: String,
    /// From sending to the end of the (capped) body.
    pub latency: Duration,
}

/// Why no answer came back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// No complete answer within the timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Could not connect (refused, unreachable, reset, DNS failure).
    #[error("could not connect: {0}")]
    Connect(String),
    /// TLS handshake or certificate failure.
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The target guard refused the address the host resolved to.
    #[error("target refused: {0}")]
    Blocked(String),
    /// The OAuth2 token endpoint did not give a token: nothing was sent to the endpoint.
    #[error("token endpoint failed: {0}")]
    Token(String),
    /// Anything else the client reported.
    #[error("request failed: {0}")]
    Other(String),
}

/// What kind of failure an [`OutboundError`] was, for people reading the attempt log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundErrorKind {
    /// [`OutboundError::Timeout`].
    Timeout,
    /// [`OutboundError::Connect`].
    Connect,
    /// [`OutboundError::Tls`].
    Tls,
    /// [`OutboundError::Blocked`].
    Blocked,
    /// [`OutboundError::Other`], or a message of no known kind.
    Other,
}

impl OutboundErrorKind {
    /// The kind of a recorded error message (the attempt log keeps an [`OutboundError`]'s
    /// text, which starts with its kind).
    pub fn of_message(message: &str) -> Self {
        if message.starts_with("timed out") {
            Self::Timeout
        } else if message.starts_with("could not connect") {
            Self::Connect
        } else if message.starts_with("TLS failed") {
            Self::Tls
        } else if message.starts_with("target refused") {
            Self::Blocked
        } else {
            Self::Other
        }
    }
}

impl OutboundError {
    /// Its kind.
    pub fn kind(&self) -> OutboundErrorKind {
        match self {
            Self::Timeout(_) => OutboundErrorKind::Timeout,
            Self::Connect(_) => OutboundErrorKind::Connect,
            Self::Tls(_) => OutboundErrorKind::Tls,
            Self::Blocked(_) => OutboundErrorKind::Blocked,
            Self::Token(_) | Self::Other(_) => OutboundErrorKind::Other,
        }
    }

    /// The retry policy's view of this failure.
    pub fn outcome(&self) -> crate::retry::AttemptOutcome {
        use crate::retry::AttemptOutcome;
        match self {
            Self::Timeout(_) => AttemptOutcome::Timeout,
            // A token endpoint that fails is retried like an endpoint that cannot be reached.
            Self::Connect(_) | Self::Token(_) | Self::Other(_) => AttemptOutcome::Connect,
            Self::Tls(_) => AttemptOutcome::Tls,
            Self::Blocked(_) => AttemptOutcome::Blocked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_error_message_tells_its_kind() {
        for e in [
            OutboundError::Timeout(Duration::from_secs(10)),
            OutboundError::Connect("connection refused".into()),
            OutboundError::Tls("bad certificate".into()),
            OutboundError::Blocked("10.0.0.1 is private".into()),
            OutboundError::Other("body too large".into()),
        ] {
            assert_eq!(
                OutboundErrorKind::of_message(&e.to_string()),
                e.kind(),
                "{e}"
            );
        }
        assert_eq!(
            OutboundErrorKind::of_message("webhook was deleted"),
            OutboundErrorKind::Other
        );
    }
}
