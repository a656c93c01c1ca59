//! Which network addresses the hub may connect to on a user's behalf (SSRF defence).
//!
//! The check is made on the address actually connected to, by the caller, at connect time;
//! this module only decides. By default every address that is not public unicast on the
//! internet is refused; an operator allows named hosts or networks explicitly.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// One operator-allowed destination: a host name or literal (any port unless given), or a
/// network in CIDR form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    Host { host: String, port: Option<u16> },
    Net(IpNet),
}

impl AllowEntry {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty entry".into());
        }
        if s.contains('/') {
            return s
                .parse::<IpNet>()
                .map(AllowEntry::Net)
                .map_err(|_| format!("{s:?} is not a network in CIDR form such as 10.0.0.0/8"));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(AllowEntry::Host {
                host: ip.to_string(),
                port: None,
            });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("{s:?} has an invalid port"))?;
                (h, Some(port))
            }
            _ => (s, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '_'));
        if !valid {
            return Err(format!("{s:?} is not a host[:port] or a CIDR network"));
        }
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => host.to_ascii_lowercase(),
        };
        Ok(AllowEntry::Host { host, port })
    }

    fn allows(&self, host: &str, port: u16, addr: IpAddr) -> bool {
        match self {
            AllowEntry::Host { host: h, port: p } => h == host && p.is_none_or(|p| p == port),
            AllowEntry::Net(net) => net.contains(&canonical(addr)),
        }
    }
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowEntry::Host { host, port: None } => f.write_str(host),
            AllowEntry::Host {
                host,
                port: Some(p),
            } if host.contains(':') => write!(f, "[{host}]:{p}"),
            AllowEntry::Host {
                host,
                port: Some(p),
            } => write!(f, "{host}:{p}"),
            AllowEntry::Net(n) => write!(f, "{n}"),
        }
    }
}

/// Why an address was refused. Each names the class so the error can say what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Loopback,
    Private,
    LinkLocal,
    SharedAddressSpace,
    Unspecified,
    Broadcast,
    Multicast,
    Reserved,
}

impl Refusal {
    pub fn describe(self) -> &'static str {
        match self {
            Refusal::Loopback => "a loopback address",
            Refusal::Private => "a private-network address",
            Refusal::LinkLocal => "a link-local address (this includes cloud metadata services)",
            Refusal::SharedAddressSpace => "a carrier-grade NAT address (100.64.0.0/10)",
            Refusal::Unspecified => "an unspecified or 'this network' address",
            Refusal::Broadcast => "the broadcast address",
            Refusal::Multicast => "a multicast address",
            Refusal::Reserved => "a reserved or documentation address",
        }
    }
}

/// The set of operator exceptions; everything else follows the default rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allowed: Vec<AllowEntry>,
}

impl AddressPolicy {
    pub fn new(allowed: Vec<AllowEntry>) -> Self {
        Self { allowed }
    }

    /// Parses `MIRRORHUB_ALLOWED_HOSTS`: comma-separated `host`, `host:port` or CIDR entries.
    pub fn parse_list(list: &str) -> Result<Self, String> {
        let allowed = list
            .split(',')
            .filter(|e| !e.trim().is_empty())
            .map(AllowEntry::parse)
            .collect::<Result<_, _>>()?;
        Ok(Self { allowed })
    }

    pub fn allowed(&self) -> &[AllowEntry] {
        &self.allowed
    }

    /// Decides whether connecting to `addr`, reached by resolving `host` for `port`, is allowed.
    /// `host` is the name as written in the URL (lowercase; an IP literal without brackets).
    pub fn check(&self, host: &str, port: u16, addr: IpAddr) -> Result<(), Refusal> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => host.to_ascii_lowercase(),
        };
        if self.allowed.iter().any(|e| e.allows(&host, port, addr)) {
            return Ok(());
        }
        match classify(addr) {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }
}

/// An IPv4-mapped IPv6 address compares as the IPv4 address it carries.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => addr,
        },
        v4 => v4,
    }
}

/// The class of a non-public address, or `None` for ordinary public unicast.
pub fn classify(addr: IpAddr) -> Option<Refusal> {
    match addr {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Refusal> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_broadcast() => Refusal::Broadcast,
        (0, _, _) => Refusal::Unspecified,
        (127, _, _) => Refusal::Loopback,
        (10, _, _) | (192, 168, _) => Refusal::Private,
        (172, 16..=31, _) => Refusal::Private,
        (100, 64..=127, _) => Refusal::SharedAddressSpace,
        (169, 254, _) => Refusal::LinkLocal,
        (224..=239, _, _) => Refusal::Multicast,
        // IETF protocol assignments, TEST-NETs, benchmarking, 6to4 relay anycast, class E.
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) | (192, 88, 99) => {
            Refusal::Reserved
        }
        (198, 18..=19, _) | (240..=255, _, _) => Refusal::Reserved,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<Refusal> {
    if ip.is_unspecified() {
        return Some(Refusal::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Refusal::Loopback);
    }
    let seg = ip.segments();
    // Forms that carry an IPv4 address: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d),
    // NAT64 (64:ff9b::/96), 6to4 (2002::/16) and Teredo (2001:0::/32, obfuscated client).
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if seg[..6] == [0; 6] {
        let v4 = Ipv4Addr::from(((seg[6] as u32) << 16) | seg[7] as u32);
        return Some(classify_v4(v4).unwrap_or(Refusal::Reserved));
    }
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0; 4] {
        let v4 = Ipv4Addr::from(((seg[6] as u32) << 16) | seg[7] as u32);
        return classify_v4(v4);
    }
    if seg[0] == 0x2002 {
        let v4 = Ipv4Addr::from(((seg[1] as u32) << 16) | seg[2] as u32);
        return classify_v4(v4);
    }
    if seg[0] == 0x2001 && seg[1] == 0 {
        let v4 = Ipv4Addr::from(!(((seg[6] as u32) << 16) | seg[7] as u32));
        return classify_v4(v4);
    }
    Some(match seg[0] {
        s if s & 0xfe00 == 0xfc00 => Refusal::Private, // fc00::/7 unique local
        s if s & 0xffc0 == 0xfe80 => Refusal::LinkLocal, // fe80::/10
        s if s & 0xffc0 == 0xfec0 => Refusal::Private, // fec0::/10 site-local (deprecated)
        s if s & 0xff00 == 0xff00 => Refusal::Multicast, // ff00::/8
        0x2001 if seg[1] == 0x0db8 => Refusal::Reserved, // documentation
        0x0100 if seg[1..4] == [0; 3] => Refusal::Reserved, // discard-only 100::/64
        s if s & 0xe000 != 0x2000 => Refusal::Reserved, // outside global unicast 2000::/3
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(addr: &str) -> Option<Refusal> {
        AddressPolicy::default()
            .check("example.org", 443, addr.parse().unwrap())
            .err()
    }

    #[test]
    fn refuses_every_non_public_class() {
        let table = [
            ("127.0.0.1", Refusal::Loopback),
            ("127.255.0.9", Refusal::Loopback),
            ("10.1.2.3", Refusal::Private),
            ("172.16.0.1", Refusal::Private),
            ("172.31.255.255", Refusal::Private),
            ("192.168.1.1", Refusal::Private),
            ("169.254.169.254", Refusal::LinkLocal),
            ("100.64.0.1", Refusal::SharedAddressSpace),
            ("100.127.255.254", Refusal::SharedAddressSpace),
            ("0.0.0.0", Refusal::Unspecified),
            ("0.1.2.3", Refusal::Unspecified),
            ("255.255.255.255", Refusal::Broadcast),
            ("224.0.0.1", Refusal::Multicast),
            ("240.0.0.1", Refusal::Reserved),
            ("::1", Refusal::Loopback),
            ("::", Refusal::Unspecified),
            ("fc00::1", Refusal::Private),
            ("fd12:3456::1", Refusal::Private),
            ("fe80::1", Refusal::LinkLocal),
            ("ff02::1", Refusal::Multicast),
            ("::ffff:127.0.0.1", Refusal::Loopback),
            ("::ffff:10.0.0.1", Refusal::Private),
            ("::ffff:169.254.169.254", Refusal::LinkLocal),
            ("::127.0.0.1", Refusal::Loopback),
            ("::10.0.0.1", Refusal::Private),
            ("64:ff9b::a9fe:a9fe", Refusal::LinkLocal),
            ("2002:7f00:1::", Refusal::Loopback),
            ("2001:db8::1", Refusal::Reserved),
        ];
        for (addr, want) in table {
            assert_eq!(refused(addr), Some(want), "{addr}");
        }
    }

    #[test]
    fn allows_public_unicast() {
        for addr in [
            "140.82.112.3",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(refused(addr), None, "{addr}");
        }
    }

    #[test]
    fn operator_entries_allow_hosts_ports_and_networks() {
        let p = AddressPolicy::parse_list("127.0.0.1:9418, git.internal, 10.0.0.0/8,[::1]:8080")
            .unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(p.check("127.0.0.1", 9418, lo).is_ok());
        assert_eq!(p.check("127.0.0.1", 22, lo), Err(Refusal::Loopback));
        assert!(p
            .check("GIT.internal", 80, "192.168.3.4".parse().unwrap())
            .is_ok());
        assert!(p.check("other", 80, "10.9.9.9".parse().unwrap()).is_ok());
        assert!(p
            .check("other", 80, "::ffff:10.9.9.9".parse().unwrap())
            .is_ok());
        assert!(p.check("[::1]", 8080, "::1".parse().unwrap()).is_ok());
        assert!(p.check("::1", 8081, "::1".parse().unwrap()).is_err());
        assert!(AddressPolicy::parse_list("not a host!").is_err());
        assert!(AddressPolicy::parse_list("10.0.0.0/33").is_err());
        assert_eq!(p.allowed()[0].to_string(), "127.0.0.1:9418");
    }

    proptest::proptest! {
        #[test]
        fn mapped_and_compatible_forms_get_the_v4_verdict(v4 in proptest::prelude::any::<u32>()) {
            let v4 = Ipv4Addr::from(v4);
            let mapped = IpAddr::V6(v4.to_ipv6_mapped());
            let want = classify_v4(v4);
            proptest::prop_assert_eq!(classify(mapped), want);
            if let Some(r) = want {
                let compat = IpAddr::V6(v4.to_ipv6_compatible());
                proptest::prop_assert!(classify(compat).is_some(), "{} {:?}", compat, r);
            }
        }

        #[test]
        fn private_v4_networks_are_never_allowed_by_default(host in 0u32..(1 << 24)) {
            let ip = Ipv4Addr::from((10u32 << 24) | host);
            proptest::prop_assert_eq!(classify(IpAddr::V4(ip)), Some(Refusal::Private));
        }
    }
}
