//! Which addresses to tell people to join, best first.

use std::net::IpAddr;

/// The addresses a room bound to `bind`:`port` can be reached at, as `HOST:PORT`
/// strings: LAN addresses first, then other IPv4, then global IPv6, loopback last.
/// A room bound to one address is reachable at that one only.
pub fn room_addresses(bind: IpAddr, port: u16) -> Vec<String> {
    let ips = if bind.is_unspecified() {
        let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
            .map(|list| list.into_iter().map(|i| i.ip()).collect())
            .unwrap_or_default();
        if bind.is_ipv4() {
            // A socket bound to 0.0.0.0 takes IPv4 only; one bound to :: takes both.
            ips.retain(IpAddr::is_ipv4);
        }
        if !ips.iter().any(IpAddr::is_loopback) {
            ips.push(if bind.is_ipv4() {
                [127, 0, 0, 1].into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        order(ips)
    } else {
        vec![bind]
    };
    ips.into_iter().map(|ip| with_port(ip, port)).collect()
}

/// Whether an address as [`room_addresses`] gives it (`HOST:PORT`, `[V6]:PORT`) is
/// this machine's loopback, which no one else can reach.
pub fn is_loopback(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `ip:port`, with brackets around IPv6.
pub fn with_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// Sort by how useful an address is to someone joining, dropping the ones nobody can
/// join at (IPv6 link-local needs a zone id; unspecified ones are not addresses).
pub fn order(mut ips: Vec<IpAddr>) -> Vec<IpAddr> {
    ips.retain(|ip| match ip {
        IpAddr::V4(v4) => !v4.is_unspecified() && !v4.is_link_local(),
        IpAddr::V6(v6) => !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80,
    });
    ips.sort_by_key(|ip| match ip {
        IpAddr::V4(v4) if v4.is_private() => 0,
        IpAddr::V4(v4) if !v4.is_loopback() => 1,
        IpAddr::V6(v6) if !v6.is_loopback() => 2,
        IpAddr::V4(_) => 3,
        IpAddr::V6(_) => 4,
    });
    ips.dedup();
    ips
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_are_told_apart() {
        assert!(is_loopback("127.0.0.1:7878"));
        assert!(is_loopback("[::1]:7878"));
        assert!(!is_loopback("192.168.1.5:7878"));
        assert!(!is_loopback("[fe80::1]:7878"));
    }

    #[test]
    fn lan_first_loopback_last_link_local_dropped() {
        let ips: Vec<IpAddr> = [
            "127.0.0.1",
            "fe80::1",
            "2001:db8::5",
            "203.0.113.9",
            "192.168.1.5",
            "::1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let got: Vec<String> = order(ips)
            .into_iter()
            .map(|ip| with_port(ip, 7878))
            .collect();
        assert_eq!(
            got,
            vec![
                "192.168.1.5:7878",
                "203.0.113.9:7878",
                "[2001:db8::5]:7878",
                "127.0.0.1:7878",
                "[::1]:7878"
            ]
        );
    }

    #[test]
    fn a_specific_bind_is_the_only_address() {
        assert_eq!(
            room_addresses("127.0.0.1".parse().unwrap(), 9),
            vec!["127.0.0.1:9"]
        );
    }

    #[test]
    fn unspecified_bind_lists_loopback_at_least() {
        let got = room_addresses("0.0.0.0".parse().unwrap(), 7878);
        assert!(got.iter().any(|a| a == "127.0.0.1:7878"), "{got:?}");
        assert!(
            got.iter().all(|a| !a.starts_with('[')),
            "IPv4 bind lists IPv4 only: {got:?}"
        );
    }
}
