//! What one line costs a single host's room, alone: a tchat peer's line read,
//! checked, numbered, kept and resolved to its sends (to its sender and one other),
//! with no sockets. The best of five rounds of 300,000 lines, each with its own `cid`.
//!
//!     cargo bench --bench room
use std::time::Instant;
use tchat::protocol::{ClientMsg, Frame};
use tchat::server::room::{Arrival, Room, Rules};
use tchat::server::session::{self, Greeted};

fn main() {
    let rules = Rules {
        burst: 0,
        rate: 0,
        addr_burst: 0,
        addr_rate: 0,
        ..Rules::default()
    };
    let mut room = Room::new("e".into(), rules);
    for (peer, name) in [(1u64, "ana"), (2, "bo")] {
        let hello = ClientMsg::Hello {
            v: 1,
            name: name.into(),
            client: None,
            session: Some(format!("session-{peer}-0123456789")),
            since: None,
        };
        let frame = Frame::Line(hello.encode().trim_end().to_owned());
        let Greeted::Tchat(hello) = session::greeted(Some(frame)) else {
            unreachable!()
        };
        room.seat(
            peer,
            Arrival {
                hello: Some(hello),
                addr: None,
                mark: room.next_event(),
            },
            0,
        );
    }
    let n = 300_000u64;
    let mut best = f64::MAX;
    for round in 0..5 {
        let lines: Vec<Frame> = (0..n)
            .map(|i| {
                let say = ClientMsg::Say {
                    text: format!("hello there number {i}"),
                    cid: Some(format!("c{round}-{i}")),
                };
                Frame::Line(say.encode().trim_end().to_owned())
            })
            .collect();
        let t = Instant::now();
        for (i, line) in lines.into_iter().enumerate() {
            let out = room.receive(1, line, round * 1000 + (i / 1000) as i64);
            std::hint::black_box(out);
        }
        best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
    }
    println!("ns_per_line={best:.0}");
}
