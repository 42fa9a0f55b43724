//! The SSRF guard: which addresses a delivery, probe or test may connect to.
//!
//! Pure: [`classify`] looks at one `IpAddr`; [`TargetPolicy::check_host`] at a URL's host as written. The
//! I/O edge resolves names and calls [`TargetPolicy::check_ip`] on every resolved address
//! right before connecting, so a DNS answer that changes after the save cannot slip past.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::{Env, SettingError};

/// Why an address is not a public unicast address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockedRange {
    /// 0.0.0.0/8 (this network) and `::`.
    Unspecified,
    /// 127.0.0.0/8 and `::1`.
    Loopback,
    /// RFC 1918: 10/8, 172.16/12, 192.168/16.
    Private,
    /// 169.254/16 (cloud metadata lives here) and fe80::/10.
    LinkLocal,
    /// 100.64/10, carrier-grade NAT.
    Cgnat,
    /// fc00::/7, IPv6 unique local (and the deprecated site-local fec0::/10).
    UniqueLocal,
    /// 224/4 and ff00::/8.
    Multicast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// 198.18/15, network benchmarking.
    Benchmarking,
    /// 240/4 and 255.255.255.255, 192.0.0/24 (IETF protocol assignments), 100::/64 (discard).
    Reserved,
}

impl BlockedRange {
    /// True for ranges a deployment may open with `HOOKLINE_ALLOW_PRIVATE_TARGETS`:
    /// addresses where a developer's own receiver can live.
    pub fn is_private_network(self) -> bool {
        matches!(
            self,
            Self::Loopback | Self::Private | Self::LinkLocal | Self::Cgnat | Self::UniqueLocal
        )
    }
}

impl fmt::Display for BlockedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unspecified => "an unspecified address",
            Self::Loopback => "a loopback address",
            Self::Private => "a private (RFC 1918) address",
            Self::LinkLocal => "a link-local address",
            Self::Cgnat => "a carrier-grade NAT address",
            Self::UniqueLocal => "a unique-local address",
            Self::Multicast => "a multicast or broadcast address",
            Self::Documentation => "a documentation address",
            Self::Benchmarking => "a benchmarking address",
            Self::Reserved => "a reserved address",
        })
    }
}

/// Classifies an address: `None` for public unicast, else the range that blocks it.
/// IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4) are judged by it.
pub fn classify(ip: IpAddr) -> Option<BlockedRange> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<BlockedRange> {
    let [a, b, c, _] = ip.octets();
    use BlockedRange::*;
    Some(match (a, b, c) {
        (0, _, _) => Unspecified,
        (127, _, _) => Loopback,
        (10, _, _) | (192, 168, _) => Private,
        (172, b, _) if (16..32).contains(&b) => Private,
        (169, 254, _) => LinkLocal,
        (100, b, _) if (64..128).contains(&b) => Cgnat,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Documentation,
        (198, 18..=19, _) => Benchmarking,
        (192, 0, 0) => Reserved,
        (224..=239, _, _) => Multicast,
        (240..=255, _, _) => Reserved,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<BlockedRange> {
    use BlockedRange::*;
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some(Unspecified);
    }
    if ip.is_loopback() {
        return Some(Loopback);
    }
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated but still routed by some stacks).
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        return classify_v4(Ipv4Addr::from(embedded_low_v4(ip)));
    }
    // 64:ff9b::/96 (NAT64) carries the IPv4 address in its low 32 bits.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(Ipv4Addr::from(embedded_low_v4(ip)));
    }
    // 2002::/16 (6to4) carries it in bits 16..48.
    if s[0] == 0x2002 {
        let [hi, lo] = [s[1].to_be_bytes(), s[2].to_be_bytes()];
        return classify_v4(Ipv4Addr::new(hi[0], hi[1], lo[0], lo[1]));
    }
    Some(match s[0] {
        x if x & 0xfe00 == 0xfc00 => UniqueLocal,
        x if x & 0xffc0 == 0xfec0 => UniqueLocal,
        x if x & 0xffc0 == 0xfe80 => LinkLocal,
        x if x & 0xff00 == 0xff00 => Multicast,
        0x2001 if s[1] == 0x0db8 => Documentation,
        x if x & 0xfff0 == 0x3ff0 => Documentation,
        0x0100 if s[1..4] == [0, 0, 0] => Reserved,
        _ => return None,
    })
}

fn embedded_low_v4(ip: Ipv6Addr) -> [u8; 4] {
    let o = ip.octets();
    [o[12], o[13], o[14], o[15]]
}

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The address is in a blocked range.
    #[error("{ip} is {range}; webhooks may only target public addresses")]
    Blocked {
        /// The address.
        ip: IpAddr,
        /// Its range.
        range: BlockedRange,
    },
    /// The host name is reserved for the local machine (`localhost` and below).
    #[error("host \"{0}\" names the local machine; webhooks may only target public hosts")]
    LocalName(String),
    /// The URL has no host.
    #[error("URL has no host")]
    NoHost,
}

/// What the URL's host is, after the literal checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckedHost {
    /// An IP literal that passed; connect to it directly.
    Ip(IpAddr),
    /// A DNS name; every address it resolves to must pass [`TargetPolicy::check_ip`].
    Name(String),
}

/// A deployment's rule for targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Allow loopback, RFC 1918, link-local, CGNAT and unique-local targets (local development).
    pub allow_private: bool,
}

impl TargetPolicy {
    /// The production rule: public unicast only.
    pub const PUBLIC_ONLY: Self = Self {
        allow_private: false,
    };

    /// The deployment's rule from `HOOKLINE_ALLOW_PRIVATE_TARGETS` (a yes/no setting),
    /// `allow_by_default` when unset (true for `hookline serve` only). Every binary that
    /// connects to endpoints reads it here.
    pub fn from_env(env: &Env, allow_by_default: bool) -> Result<Self, SettingError> {
        Ok(Self {
            allow_private: env.flag("HOOKLINE_ALLOW_PRIVATE_TARGETS", allow_by_default)?,
        })
    }

    /// Checks one address, e.g. each one a host name resolved to.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), TargetError> {
        match classify(ip) {
            None => Ok(()),
            Some(range) if self.allow_private && range.is_private_network() => Ok(()),
            Some(range) => Err(TargetError::Blocked { ip, range }),
        }
    }

    /// Checks a URL's host as written: IP literals by address (the `url` crate has already
    /// turned decimal, octal and hex IPv4 forms into plain addresses), `localhost` names by name.
    pub fn check_host(&self, url: &url::Url) -> Result<CheckedHost, TargetError> {
        match url.host() {
            None => Err(TargetError::NoHost),
            Some(url::Host::Ipv4(ip)) => self
                .check_ip(IpAddr::V4(ip))
                .map(|()| CheckedHost::Ip(ip.into())),
            Some(url::Host::Ipv6(ip)) => self
                .check_ip(IpAddr::V6(ip))
                .map(|()| CheckedHost::Ip(ip.into())),
            Some(url::Host::Domain(name)) => {
                let bare = name.trim_end_matches('.').to_ascii_lowercase();
                let local = bare == "localhost" || bare.ends_with(".localhost");
                if local && !self.allow_private {
                    Err(TargetError::LocalName(name.to_owned()))
                } else {
                    Ok(CheckedHost::Name(name.to_owned()))
                }
            }
        }
    }
}

/// The HTTP proxy deliveries, checks and token requests leave through
/// (`HOOKLINE_EGRESS_PROXY`, `http://[user:password@]host:port`): HTTPS goes through it with
/// `CONNECT`, plain HTTP (local development) as absolute-form requests. The target guard
/// still applies to each request's own host, resolved and checked before it is handed to the
/// proxy; the proxy's own address is exempt (it usually lives in a private subnet).
#[derive(Clone, PartialEq, Eq)]
pub struct EgressProxy {
    url: url::Url,
}

impl fmt::Debug for EgressProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Its credentials stay out of logs.
        f.debug_struct("EgressProxy")
            .field("host", &self.url.host_str())
            .field("port", &self.url.port_or_known_default())
            .finish()
    }
}

impl EgressProxy {
    /// Parses `http://[user:password@]host[:port]` (no path, query or fragment).
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text).map_err(|e| format!("is not a URL: {e}"))?;
        if url.scheme() != "http" {
            return Err(format!(
                "must be an http:// proxy URL (HTTPS is tunnelled through it with CONNECT), not {}://",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("names no host".into());
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err("must be just the proxy's scheme, host and port".into());
        }
        Ok(Self { url })
    }

    /// Reads `HOOKLINE_EGRESS_PROXY` (unset or empty: no proxy).
    pub fn from_env(env: &Env) -> Result<Option<Self>, SettingError> {
        env.parsed("HOOKLINE_EGRESS_PROXY", None, |v| {
            if v.trim().is_empty() {
                Ok(None)
            } else {
                Self::parse(v.trim()).map(Some)
            }
        })
    }

    /// The proxy's URL (with its credentials).
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// The proxy's host, as the resolver is asked for it.
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BlockedRange::*;

    #[test]
    fn classifies_the_ranges_of_design_section_7() {
        let cases: &[(&str, Option<BlockedRange>)] = &[
            ("0.0.0.0", Some(Unspecified)),
            ("0.1.2.3", Some(Unspecified)),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.255.254", Some(Loopback)),
            ("10.0.0.1", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("172.32.0.1", None),
            ("172.15.255.255", None),
            ("192.168.1.1", Some(Private)),
            ("169.254.169.254", Some(LinkLocal)),
            ("100.64.0.1", Some(Cgnat)),
            ("100.127.255.255", Some(Cgnat)),
            ("100.128.0.1", None),
            ("100.63.255.255", None),
            ("192.0.2.10", Some(Documentation)),
            ("198.51.100.7", Some(Documentation)),
            ("203.0.113.9", Some(Documentation)),
            ("198.18.0.1", Some(Benchmarking)),
            ("192.0.0.8", Some(Reserved)),
            ("224.0.0.1", Some(Multicast)),
            ("239.255.255.250", Some(Multicast)),
            ("240.0.0.1", Some(Reserved)),
            ("255.255.255.255", Some(Reserved)),
            ("8.8.8.8", None),
            ("93.184.216.34", None),
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:10.1.2.3", Some(Private)),
            ("::ffff:169.254.169.254", Some(LinkLocal)),
            ("::ffff:8.8.8.8", None),
            ("::127.0.0.1", Some(Loopback)),
            ("::192.168.0.1", Some(Private)),
            ("64:ff9b::10.0.0.1", Some(Private)),
            ("64:ff9b::8.8.8.8", None),
            ("2002:7f00:1::", Some(Loopback)),
            ("2002:0808:0808::1", None),
            ("fc00::1", Some(UniqueLocal)),
            ("fd12:3456::1", Some(UniqueLocal)),
            ("fec0::1", Some(UniqueLocal)),
            ("fe80::1", Some(LinkLocal)),
            ("febf::1", Some(LinkLocal)),
            ("ff02::1", Some(Multicast)),
            ("2001:db8::1", Some(Documentation)),
            ("3fff::1", Some(Documentation)),
            ("100::1", Some(Reserved)),
            ("2606:4700:4700::1111", None),
            ("2a00:1450:4001::200e", None),
        ];
        for (ip, expected) in cases {
            let addr: IpAddr = ip.parse().expect(ip);
            assert_eq!(classify(addr), *expected, "{ip}");
        }
    }

    #[test]
    fn private_targets_open_only_with_the_setting_and_never_metadata_like_ranges() {
        let dev = TargetPolicy {
            allow_private: true,
        };
        let prod = TargetPolicy::PUBLIC_ONLY;
        for ip in ["127.0.0.1", "10.0.0.1", "::1", "fd00::1", "169.254.169.254"] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert!(prod.check_ip(ip).is_err(), "{ip}");
            assert!(dev.check_ip(ip).is_ok(), "{ip}");
        }
        for ip in ["0.0.0.0", "224.0.0.1", "192.0.2.1", "::"] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert!(dev.check_ip(ip).is_err(), "{ip}");
        }
    }

    #[test]
    fn url_hosts_in_every_spelling_are_checked() {
        let prod = TargetPolicy::PUBLIC_ONLY;
        for bad in [
            "https://127.0.0.1/",
            "https://2130706433/",
            "https://0x7f000001/",
            "https://0177.0.0.1/",
            "https://127.1/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:7f00:1]/",
            "https://[::1]/",
            "https://localhost/",
            "https://LOCALHOST./",
            "https://api.localhost/",
            "https://169.254.169.254/latest/meta-data/",
        ] {
            let url = url::Url::parse(bad).expect(bad);
            assert!(prod.check_host(&url).is_err(), "{bad}");
        }
        let url = url::Url::parse("https://hooks.example.com/x").expect("url");
        assert_eq!(
            prod.check_host(&url),
            Ok(CheckedHost::Name("hooks.example.com".into()))
        );
        let url = url::Url::parse("https://8.8.8.8/x").expect("url");
        assert_eq!(
            prod.check_host(&url),
            Ok(CheckedHost::Ip("8.8.8.8".parse().expect("ip")))
        );
        let url = url::Url::parse("https://localhost:8443/").expect("url");
        assert!(TargetPolicy {
            allow_private: true
        }
        .check_host(&url)
        .is_ok());
    }

    #[test]
    fn the_egress_proxy_is_an_http_url_of_a_host_and_port() {
        let p = EgressProxy::parse("http://user:pw@proxy.internal:3128").expect("proxy");
        assert_eq!(p.host(), "proxy.internal");
        assert!(
            !format!("{p:?}").contains("pw"),
            "credentials stay out of logs"
        );
        for bad in [
            "https://proxy:3128",
            "http://proxy:3128/path",
            "proxy:3128",
            "http://",
        ] {
            assert!(EgressProxy::parse(bad).is_err(), "{bad}");
        }
        let env = Env::from_pairs([("HOOKLINE_EGRESS_PROXY", "")]);
        assert_eq!(EgressProxy::from_env(&env).expect("empty"), None);
        let env = Env::from_pairs([("HOOKLINE_EGRESS_PROXY", "socks5://x:1")]);
        assert!(EgressProxy::from_env(&env).is_err());
    }
}
