//! Limits per address at the door, before a connection costs the room anything: how
//! many connections one address may hold at once, and how fast it may open new ones.
//!
//! Pure (time comes in as a monotonic [`Instant`]), and O(1) per connection: an address
//! is remembered while it has connections, and after its last one only until its
//! allowance of new connections would be whole again; forgetting it is amortised over
//! the connections that come in.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The address a connection counts against. An IPv4 peer reaching a dual-stack socket
/// shows as `::ffff:a.b.c.d`: it is `a.b.c.d`. An IPv6 host is given a whole /64 to
/// pick its addresses from, so an IPv6 address counts as its /64: otherwise one machine
/// could take a fresh address for every connection, past every limit here, and make
/// this table grow without bound.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from_bits(
                v6.to_bits() & !u128::from(u64::MAX),
            )),
        },
        v4 => v4,
    }
}

/// Why a connection was turned away at the door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The address already holds this many connections.
    Busy(usize),
    /// The address opened connections too fast; it may try again after this long.
    TooFast(Duration),
}

impl Refusal {
    /// What the connection is told (after the protocol version, see
    /// [`crate::protocol::refusal_line`]).
    pub fn text(&self) -> String {
        match self {
            Refusal::Busy(n) => format!(
                "busy: {n} connections from your address are in the room already; close one and try again"
            ),
            Refusal::TooFast(wait) => format!(
                "slow down: too many new connections from your address; try again in {} s",
                wait.as_secs().max(1)
            ),
        }
    }
}

#[derive(Debug)]
struct Entry {
    open: usize,
    /// New connections it may still open at once, in thousandths.
    milli: u64,
    at: Instant,
    idle_since: Instant,
}

/// The door's memory of addresses.
#[derive(Debug)]
pub struct PerAddress {
    /// Connections at once from one address (0: no limit).
    max_open: usize,
    /// New connections one address may open in a minute, all at once if it likes
    /// (0: no limit).
    per_minute: u32,
    table: HashMap<IpAddr, Entry>,
    /// Addresses whose last connection closed, oldest first.
    idle: VecDeque<(Instant, IpAddr)>,
}

impl PerAddress {
    pub fn new(max_open: usize, per_minute: u32) -> Self {
        PerAddress {
            max_open,
            per_minute,
            table: HashMap::new(),
            idle: VecDeque::new(),
        }
    }

    /// True when there is no limit at all to keep.
    fn off(&self) -> bool {
        self.max_open == 0 && self.per_minute == 0
    }

    fn full(&self) -> u64 {
        u64::from(self.per_minute) * 1000
    }

    /// How long an emptied allowance takes to be whole again.
    fn refill_time(&self) -> Duration {
        if self.per_minute == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(60)
        }
    }

    /// May a connection from `ip` come in now? If so it is counted until
    /// [`PerAddress::close`].
    pub fn open(&mut self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        self.forget_idle(now);
        if self.off() {
            return Ok(());
        }
        let full = self.full();
        let per_minute = u64::from(self.per_minute);
        let entry = self.table.entry(ip).or_insert(Entry {
            open: 0,
            milli: full,
            at: now,
            idle_since: now,
        });
        if self.max_open > 0 && entry.open >= self.max_open {
            return Err(Refusal::Busy(entry.open));
        }
        if per_minute > 0 {
            // per_minute tokens a minute: per_minute thousandths a 60 ms.
            let elapsed = now.saturating_duration_since(entry.at).as_millis();
            let gained = u64::try_from(elapsed)
                .unwrap_or(u64::MAX)
                .saturating_mul(per_minute)
                / 60;
            entry.milli = entry.milli.saturating_add(gained).min(full);
            entry.at = now;
            if entry.milli < 1000 {
                let short = 1000 - entry.milli;
                let wait = Duration::from_millis(short.saturating_mul(60) / per_minute + 1);
                return Err(Refusal::TooFast(wait));
            }
            entry.milli -= 1000;
        }
        entry.open += 1;
        Ok(())
    }

    /// A connection from `ip` that [`PerAddress::open`] let in has closed.
    pub fn close(&mut self, ip: IpAddr, now: Instant) {
        if let Some(e) = self.table.get_mut(&ip) {
            e.open = e.open.saturating_sub(1);
            if e.open == 0 {
                e.idle_since = now;
                self.idle.push_back((now, ip));
            }
        }
        self.forget_idle(now);
    }

    /// Addresses remembered (bounded: those with connections, and those whose
    /// allowance is still being refilled).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    fn forget_idle(&mut self, now: Instant) {
        let keep = self.refill_time();
        while let Some(&(since, ip)) = self.idle.front() {
            if now < since + keep {
                break;
            }
            self.idle.pop_front();
            if let Some(e) = self.table.get(&ip)
                && e.open == 0
                && now >= e.idle_since + keep
            {
                self.table.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn an_address_holds_at_most_max_open_and_others_are_unaffected() {
        let t = Instant::now();
        let mut door = PerAddress::new(3, 0);
        for _ in 0..3 {
            door.open(ip(2), t).unwrap();
        }
        assert_eq!(door.open(ip(2), t), Err(Refusal::Busy(3)));
        door.open(ip(3), t).unwrap();
        door.close(ip(2), t);
        door.open(ip(2), t).unwrap();
    }

    #[test]
    fn reconnecting_fast_is_refused_until_the_allowance_refills() {
        let t = Instant::now();
        let mut door = PerAddress::new(0, 6);
        for _ in 0..6 {
            door.open(ip(2), t).unwrap();
            door.close(ip(2), t);
        }
        let Err(Refusal::TooFast(wait)) = door.open(ip(2), t) else {
            panic!("the seventh connection within a minute is refused");
        };
        assert!(wait <= Duration::from_secs(11) && wait >= Duration::from_secs(9));
        // Still refused a moment later, let in once one connection's worth has refilled.
        assert!(door.open(ip(2), t + Duration::from_secs(5)).is_err());
        door.open(ip(2), t + Duration::from_secs(10)).unwrap();
    }

    #[test]
    fn an_address_is_forgotten_once_its_allowance_is_whole_again() {
        let t = Instant::now();
        let mut door = PerAddress::new(2, 6);
        for i in 0..100u8 {
            door.open(ip(i), t).unwrap();
            door.close(ip(i), t);
        }
        assert_eq!(door.len(), 100);
        door.open(ip(200), t + Duration::from_secs(61)).unwrap();
        assert_eq!(door.len(), 1, "only the address with a connection is kept");
    }

    #[test]
    fn one_machine_is_one_address_however_it_connects() {
        let v4: IpAddr = [192, 168, 1, 5].into();
        let mapped: IpAddr = "::ffff:192.168.1.5".parse().unwrap();
        assert_eq!(address_key(mapped), v4);
        assert_eq!(address_key(v4), v4);
        // An IPv6 host has a whole /64 to pick addresses from: it is one address here.
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:fffe".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(other));
    }

    #[test]
    fn no_limits_keep_nothing() {
        let t = Instant::now();
        let mut door = PerAddress::new(0, 0);
        for _ in 0..1000 {
            door.open(ip(2), t).unwrap();
        }
        assert!(door.is_empty());
    }
}
