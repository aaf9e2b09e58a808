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

/// Wrong codes tried at a private room, by address (as [`address_key`] groups them):
/// the first few are free (a typo), then the address waits before its next try, twice
/// as long after each wrong one, up to an hour. A right code forgets the address. The
/// table is bounded: when full, addresses whose wait is over go first, then any.
#[derive(Debug)]
pub struct WrongCodes {
    tries: std::collections::HashMap<IpAddr, (u32, std::time::Instant)>,
    cap: usize,
}

/// Wrong codes an address may try before it has to wait.
pub const FREE_WRONG_CODES: u32 = 3;

/// The longest an address is made to wait between tries.
const MAX_CODE_WAIT: std::time::Duration = std::time::Duration::from_secs(3600);

impl WrongCodes {
    pub fn new(cap: usize) -> Self {
        WrongCodes {
            tries: std::collections::HashMap::new(),
            cap: cap.max(1),
        }
    }

    /// Whether `ip` may try a code now; if not, how long it still has to wait.
    pub fn check(&self, ip: IpAddr, now: std::time::Instant) -> Result<(), std::time::Duration> {
        match self.tries.get(&address_key(ip)) {
            Some((_, until)) if *until > now => Err(*until - now),
            _ => Ok(()),
        }
    }

    /// `ip` makes a guess: counted at once, before anyone knows whether it is right
    /// (a guesser that learns the answer and goes quiet has still guessed), and only if
    /// the address may guess now, checked in the same step (so connections side by side
    /// cannot all pass the check before any is counted). The guesses so far and the
    /// wait now due, or the wait still to go.
    pub fn guess(
        &mut self,
        ip: IpAddr,
        now: std::time::Instant,
    ) -> Result<(u32, std::time::Duration), std::time::Duration> {
        self.check(ip, now)?;
        Ok(self.failed(ip, now))
    }

    /// `ip` tried a wrong code: how many it has tried, and how long it must now wait.
    pub fn failed(&mut self, ip: IpAddr, now: std::time::Instant) -> (u32, std::time::Duration) {
        let key = address_key(ip);
        if !self.tries.contains_key(&key) && self.tries.len() >= self.cap {
            // Full: the address with the fewest guesses goes (rarely: a scan of the
            // table), so that churning through addresses cannot wipe a guesser's count.
            let fewest = self
                .tries
                .iter()
                .min_by_key(|(_, (n, until))| (*n, *until))
                .map(|(k, _)| *k);
            if let Some(k) = fewest {
                self.tries.remove(&k);
            }
        }
        let entry = self.tries.entry(key).or_insert((0, now));
        entry.0 = entry.0.saturating_add(1);
        let wait = match entry.0.checked_sub(FREE_WRONG_CODES) {
            None | Some(0) => std::time::Duration::ZERO,
            Some(n) => std::time::Duration::from_secs(1u64 << n.min(12)).min(MAX_CODE_WAIT),
        };
        entry.1 = now + wait;
        (entry.0, wait)
    }

    /// `ip` proved the code: its wrong tries are forgotten.
    pub fn succeeded(&mut self, ip: IpAddr) {
        self.tries.remove(&address_key(ip));
    }
}

#[cfg(test)]
mod wrong_code_tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn wrong_codes_cost_an_address_a_growing_wait_and_a_right_one_forgets() {
        let mut w = WrongCodes::new(16);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t = Instant::now();
        for n in 1..=FREE_WRONG_CODES {
            assert_eq!(w.failed(a, t), (n, Duration::ZERO));
            assert_eq!(w.check(a, t), Ok(()));
        }
        assert_eq!(w.failed(a, t), (4, Duration::from_secs(2)));
        assert_eq!(w.check(a, t), Err(Duration::from_secs(2)));
        assert_eq!(w.check(b, t), Ok(()), "another address is not held up");
        let later = t + Duration::from_secs(2);
        assert_eq!(w.check(a, later), Ok(()));
        assert_eq!(w.failed(a, later), (5, Duration::from_secs(4)));
        w.succeeded(a);
        assert_eq!(w.check(a, later), Ok(()));
        // One /64 is one address.
        let (v6a, v6b): (IpAddr, IpAddr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        for _ in 0..4 {
            w.failed(v6a, t);
        }
        assert!(w.check(v6b, t).is_err());
    }

    #[test]
    fn a_guess_is_counted_and_checked_in_one_step() {
        let mut w = WrongCodes::new(16);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let t = Instant::now();
        for n in 1..=FREE_WRONG_CODES {
            assert_eq!(w.guess(a, t), Ok((n, Duration::ZERO)));
        }
        assert_eq!(w.guess(a, t), Ok((4, Duration::from_secs(2))));
        assert_eq!(
            w.guess(a, t),
            Err(Duration::from_secs(2)),
            "not counted while waiting"
        );
        w.succeeded(a);
        assert_eq!(w.guess(a, t), Ok((1, Duration::ZERO)));
    }

    #[test]
    fn a_full_table_lets_go_of_the_fewest_guesses_first() {
        let mut w = WrongCodes::new(2);
        let t = Instant::now();
        let (heavy, light, new): (IpAddr, IpAddr, IpAddr) = (
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            "10.0.0.3".parse().unwrap(),
        );
        for _ in 0..6 {
            w.failed(heavy, t);
        }
        w.failed(light, t);
        w.failed(new, t);
        assert!(w.check(heavy, t).is_err(), "the guesser is still held");
        assert_eq!(w.tries.len(), 2);
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut w = WrongCodes::new(8);
        let t = Instant::now();
        for i in 0..100u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(i));
            for _ in 0..5 {
                w.failed(ip, t);
            }
        }
        assert!(w.tries.len() <= 8);
    }
}
