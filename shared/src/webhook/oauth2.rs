//! OAuth2 client credentials for HTTP endpoints that want a bearer token (RFC 6749 §4.4):
//! per webhook a token URL, a client id, a client secret (sealed at rest like the signing
//! secrets, field `<webhook id>:oauth2:clientSecret`) and an optional scope and audience.
//! The token requests and their cache are `crate::tokens`.

use serde::Deserialize;

use super::input::WebhookRules;
use super::WebhookUrl;
use crate::sealed::Protected;
use crate::validation::FieldError;

/// Longest client id, scope or audience, in characters.
pub const MAX_OAUTH2_FIELD_CHARS: usize = 1024;

/// A webhook's OAuth2 client credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuth2 {
    /// Where tokens are asked for.
    pub token_url: WebhookUrl,
    /// The client id.
    pub client_id: String,
    /// The client secret: plaintext as validated, sealed once the service seals it.
    pub client_secret: Protected,
    /// The `scope` asked for, if any.
    pub scope: Option<String>,
    /// The `audience` asked for, if any (Auth0 and others want one).
    pub audience: Option<String>,
}

impl OAuth2 {
    /// The field its client secret is sealed for.
    pub fn field(webhook_id: &str) -> String {
        format!("{webhook_id}:oauth2:clientSecret")
    }
}

/// OAuth2 client credentials as sent.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OAuth2Input {
    /// The token endpoint (`https://`, the same rules as the endpoint's URL).
    pub token_url: String,
    /// The client id.
    pub client_id: String,
    /// The client secret (never shown again; sealed at rest).
    pub client_secret: String,
    /// The `scope` to ask for.
    #[serde(default)]
    pub scope: Option<String>,
    /// The `audience` to ask for.
    #[serde(default)]
    pub audience: Option<String>,
}

impl std::fmt::Debug for OAuth2Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth2Input")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scope", &self.scope)
            .field("audience", &self.audience)
            .finish()
    }
}

fn text(value: &str, field: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    if value.is_empty()
        || value.chars().count() > MAX_OAUTH2_FIELD_CHARS
        || value.chars().any(char::is_control)
    {
        errors.push(FieldError::new(
            field,
            format!(
                "must be 1-{MAX_OAUTH2_FIELD_CHARS} characters, none of them control characters"
            ),
        ));
        return None;
    }
    Some(value.to_owned())
}

impl OAuth2Input {
    /// Checks every field (reported as `oauth2.<field>`).
    pub fn check(&self, rules: &WebhookRules<'_>, errors: &mut Vec<FieldError>) -> Option<OAuth2> {
        let before = errors.len();
        let token_url = WebhookUrl::parse(&self.token_url, rules)
            .map_err(|m| errors.push(FieldError::new("oauth2.tokenUrl", m)))
            .ok();
        let client_id = text(&self.client_id, "oauth2.clientId", errors);
        let client_secret = text(&self.client_secret, "oauth2.clientSecret", errors);
        let scope = self
            .scope
            .as_deref()
            .map(|s| text(s, "oauth2.scope", errors));
        let audience = self
            .audience
            .as_deref()
            .map(|s| text(s, "oauth2.audience", errors));
        if errors.len() != before {
            return None;
        }
        Some(OAuth2 {
            token_url: token_url?,
            client_id: client_id?,
            client_secret: Protected::Plain(client_secret?),
            scope: scope.flatten(),
            audience: audience.flatten(),
        })
    }
}
