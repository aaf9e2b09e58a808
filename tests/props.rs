//! Property tests for everything that reads network input: framing, sanitising,
//! wrapping, and the room's rules under arbitrary frames.

use bytes::BytesMut;
use proptest::prelude::*;
use tokio_util::codec::Decoder;
use unicode_segmentation::UnicodeSegmentation;

use tchat::protocol::{ClientMsg, Frame, LineDecoder, ServerMsg, Since};
use tchat::sanitize;
use tchat::server::room::{Action, Arrival, Outgoing, Room, Rules};
use tchat::server::session::{self, Greeted};
use tchat::text;

/// Decode `input` fed to the decoder in pieces cut at `cuts`.
fn decode_in_pieces(input: &[u8], cuts: &[usize], max: usize) -> Vec<Frame> {
    let mut dec = LineDecoder::new(max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.push(input.len());
    points.sort_unstable();
    let mut at = 0;
    for p in points {
        buf.extend_from_slice(&input[at..p]);
        at = p;
        while let Some(f) = dec.decode(&mut buf).unwrap() {
            out.push(f);
        }
        assert!(
            buf.len() <= max + 1,
            "buffer grew past the limit: {}",
            buf.len()
        );
    }
    while let Some(f) = dec.decode_eof(&mut buf).unwrap() {
        out.push(f);
    }
    out
}

/// Bytes that look like chat traffic: text, newlines, CRs, escapes, broken UTF-8.
fn wire_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        "[a-z ]{0,12}".prop_map(String::into_bytes),
        "[\u{4e00}-\u{4e10}🎉é]{0,4}".prop_map(String::into_bytes),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\x1b[2J".to_vec()),
        Just(vec![0xff]),
        Just(vec![0xe2, 0x98]),
        prop::collection::vec(any::<u8>(), 0..8),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_split_decodes_to_the_same_frames(
        input in wire_bytes(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        max in 4usize..64,
    ) {
        let whole = decode_in_pieces(&input, &[], max);
        let split = decode_in_pieces(&input, &cuts, max);
        prop_assert_eq!(whole, split);
    }

    #[test]
    fn frames_are_lines_without_terminators(input in wire_bytes(), max in 4usize..64) {
        for f in decode_in_pieces(&input, &[], max) {
            if let Frame::Line(l) = f {
                prop_assert!(!l.contains('\n'));
                prop_assert!(l.len() <= max * 3 + 3, "a line over the limit got through");
            }
        }
    }

    #[test]
    fn lines_under_the_limit_come_back_exactly(lines in prop::collection::vec("[^\n\r]{0,20}", 0..10)) {
        let mut input = String::new();
        for l in &lines {
            input.push_str(l);
            input.push('\n');
        }
        let got = decode_in_pieces(input.as_bytes(), &[], 1024);
        let want: Vec<Frame> = lines.into_iter().map(Frame::Line).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn sanitised_text_has_nothing_forbidden(s in any::<String>()) {
        let t = sanitize::text(&s);
        prop_assert!(!t.chars().any(|c| c != '\n' && sanitize::is_forbidden(c)));
        let l = sanitize::line(&s);
        prop_assert!(!l.chars().any(sanitize::is_forbidden));
        // Sanitising is idempotent: safe text stays as it is.
        prop_assert_eq!(sanitize::text(&t), t.clone());
    }

    #[test]
    fn wrapping_keeps_every_character_and_the_width(
        s in "([a-z 世界🎉é\u{301}\n]{0,40}(https://[a-z/世]{0,30})?){1,3}",
        first in 0usize..30,
        rest in 0usize..30,
        more in 0usize..10,
    ) {
        let full = rest + more;
        let rows = text::wrap(&s, first, rest, full);
        prop_assert!(!rows.is_empty());
        let mut last_end = 0;
        for (i, r) in rows.iter().enumerate() {
            let r_bytes = r.bytes.clone();
            prop_assert!(r_bytes.start >= last_end && r_bytes.end <= s.len());
            // Only whitespace (a break point or a newline) is left out between rows.
            prop_assert!(s[last_end..r_bytes.start].chars().all(char::is_whitespace));
            last_end = r_bytes.end;
            let row = &s[r_bytes];
            prop_assert!(i > 0 || !r.flush, "the first row is never flush");
            let limit = if i == 0 { first } else if r.flush { full } else { rest }.max(1);
            // A row is over the limit only when it is one cluster that cannot fit.
            let clusters = row.trim().graphemes(true).count();
            prop_assert!(text::width(row) <= limit || clusters == 1,
                "row {row:?} is wider than {limit}");
            // Only a word longer than an indented row is put at the edge.
            if r.flush {
                let spaces = row.graphemes(true).any(|g| g.chars().all(char::is_whitespace));
                prop_assert!(!spaces, "flush row {row:?} holds more than a word");
            }
        }
        prop_assert!(s[last_end..].chars().all(char::is_whitespace));
    }

    #[test]
    fn invitations_read_back_and_bad_ones_never_panic(
        hosts in proptest::collection::vec("([a-z0-9.-]{1,20}|[0-9a-f:]{2,20})", 1..4),
        ports in proptest::collection::vec(1u16.., 4),
        key in "[0-9a-f]{32,64}",
        junk in any::<String>(),
    ) {
        let addrs: Vec<String> = hosts
            .iter()
            .zip(&ports)
            .map(|(h, p)| if h.contains(':') { format!("[{h}]:{p}") } else { format!("{h}:{p}") })
            .collect();
        let inv = tchat::invite::Invitation::new(&addrs, &key, None);
        let back = tchat::invite::Invitation::parse(&inv.token());
        prop_assert_eq!(back.map(|i| i.addrs), Ok(addrs));
        let _ = tchat::invite::Invitation::parse(&junk);
    }

    #[test]
    fn structured_decoding_never_panics(s in any::<String>()) {
        let _ = ServerMsg::decode(&s);
        let _ = ClientMsg::decode(&s);
        let _ = ClientMsg::parse_hello(&s);
        let _ = tchat::protocol::parse_banner(&s);
    }

    #[test]
    fn the_room_survives_any_frames_and_relays_nothing_forbidden(
        events in prop::collection::vec((0u64..4, any::<u8>(), ".{0,40}"), 0..60),
    ) {
        let mut room = Room::new("e".into(), Rules { max_line: 32, ..Rules::default() });
        for (peer, kind, s) in events {
            let now = i64::from(kind);
            let actions = match kind % 9 {
                0 => deliver(&mut room, peer, Frame::Line(s), now),
                6 => room.quiet(peer, now),
                7 => room.cut(peer, &s, "cut", now),
                8 => {
                    // A rejoin: a session shared by two connections, asking for events
                    // from any point (or from another room).
                    let hello = ClientMsg::Hello {
                        v: 1,
                        name: s,
                        client: None,
                        session: Some(format!("s{}", kind % 2)),
                        since: Some(Since { room: if kind % 3 == 0 { "other".into() } else { "e".into() }, id: u64::from(kind / 4) }),
                    };
                    deliver(&mut room, peer, Frame::Line(hello.encode().trim_end().into()), now)
                }
                1 => deliver(&mut room, peer, Frame::TooLong, 1),
                2 => deliver(&mut room, peer, Frame::Line(ClientMsg::Hello { v: 1, name: s, client: None, session: None, since: None }.encode().trim_end().into()), 1),
                3 => deliver(&mut room, peer, Frame::Line(ClientMsg::Say { text: s, cid: Some(format!("c{}", kind % 5)) }.encode().trim_end().into()), now),
                4 if room.dialect(peer).is_none() => {
                    let mark = room.next_event();
                    room.seat(peer, Arrival { mark, ..Arrival::default() }, 1)
                }
                4 => room.tick(now + 5_000),
                _ => room.disconnect(peer, None, 1),
            };
            for a in actions {
                if let Action::Send(target, Outgoing::Event(msg)) = a {
                    let plain = msg.to_plain();
                    prop_assert!(!plain.chars().any(|c| c != '\n' && sanitize::is_forbidden(c)), "{plain:?}");
                    if let ServerMsg::Msg { text, .. } = &msg {
                        // Sanitising may turn a byte into a 3-byte picture, no more.
                        prop_assert!(text.len() <= 32 * 3, "over-long text relayed to {target:?}");
                    }
                }
            }
            // Names stay unique (ignoring case and look-alikes) and within the limit.
            let names = room.names();
            let mut lower: Vec<String> = names.iter().map(|n| tchat::names::fold(n)).collect();
            lower.sort();
            lower.dedup();
            prop_assert_eq!(lower.len(), names.len());
            prop_assert!(names.iter().all(|n| (1..=24).contains(&n.chars().count())));
            prop_assert!(names.iter().all(|n| !n.chars().any(|c| c.is_whitespace() || sanitize::is_forbidden(c))));
        }
    }
}

/// What the host does with a frame from a connection: the first one settles its
/// handshake (and a plain peer's first line is then its first line in the room); later
/// ones go to the room.
fn deliver(room: &mut Room, peer: u64, frame: Frame, now: i64) -> Vec<Action> {
    if room.dialect(peer).is_some() {
        return room.receive(peer, frame, now);
    }
    let mark = room.next_event();
    match session::greeted(Some(frame)) {
        Greeted::Tchat(hello) => room.seat(
            peer,
            Arrival {
                hello: Some(hello),
                addr: None,
                mark,
            },
            now,
        ),
        Greeted::Plain(first) => {
            let mut a = room.seat(
                peer,
                Arrival {
                    mark,
                    ..Arrival::default()
                },
                now,
            );
            if let Some(f) = first {
                a.extend(room.receive(peer, f, now));
            }
            a
        }
        Greeted::Refuse(_) | Greeted::Gone => Vec::new(),
    }
}

/// Feed `lines` (each ended by `\n`) to a [`LineReader`] in pieces cut at `cuts`, with
/// the pause after each piece taken from `pauses` (ms, on tokio's paused clock), and
/// read back every line.
fn read_through_stalls(
    lines: &[String],
    cuts: &[usize],
    pauses: &[u64],
    strict: bool,
) -> Vec<String> {
    use tchat::net::{LineReader, Read};
    use tokio::io::AsyncWriteExt;
    let input: Vec<u8> = lines
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.push(input.len());
    points.sort_unstable();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut far, near) = tokio::io::duplex(1 << 16);
        let pauses = pauses.to_vec();
        let writer = tokio::spawn(async move {
            let mut at = 0;
            for (i, p) in points.into_iter().enumerate() {
                far.write_all(&input[at..p]).await.unwrap();
                at = p;
                let pause = pauses.get(i % pauses.len().max(1)).copied().unwrap_or(0);
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
        });
        let mut reader = LineReader::new(near, 1 << 16);
        if strict {
            reader.set_strict();
        }
        let mut got = Vec::new();
        loop {
            match reader.next(None).await {
                Read::Frame(Frame::Line(l)) => got.push(l),
                Read::Frame(Frame::TooLong) => got.push("<too long>".into()),
                Read::Closed(_) | Read::Overrun => break,
                Read::Quiet => {}
            }
        }
        writer.await.unwrap();
        got
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The structured dialect: however a line is cut and however long the stalls
    /// between the pieces, each line is read whole.
    #[test]
    fn strict_lines_survive_any_cuts_and_stalls(
        lines in prop::collection::vec("[a-z{}\":,é你👋 ]{0,40}", 1..6),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        pauses in prop::collection::vec(0u64..2_000, 1..12),
    ) {
        let got = read_through_stalls(&lines, &cuts, &pauses, true);
        prop_assert_eq!(got, lines);
    }

    /// A plain peer that began with a whole line is read the same way after it.
    #[test]
    fn a_plain_peer_that_ends_its_lines_is_read_whole_after_the_first(
        lines in prop::collection::vec("[a-z é你]{0,30}", 1..5),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
        pauses in prop::collection::vec(0u64..1_000, 1..10),
    ) {
        let mut all = vec!["hello".to_owned()];
        all.extend(lines);
        let first = all[0].len() + 1;
        let total: usize = all.iter().map(|l| l.len() + 1).sum();
        // The first line arrives whole; the cuts fall after it.
        let cuts: Vec<usize> = cuts.iter().map(|c| first + c % (total - first + 1)).collect();
        let got = read_through_stalls(&all, &cuts, &pauses, false);
        prop_assert_eq!(got, all);
    }
}

/// The names an event shows.
fn event_names(event: &ServerMsg) -> Vec<&str> {
    match event {
        ServerMsg::Msg { from, .. } | ServerMsg::Me { from, .. } => vec![from.as_str()],
        ServerMsg::Private { from, to, .. } => vec![from.as_str(), to.as_str()],
        ServerMsg::Topic { by, .. } => vec![by.as_str()],
        ServerMsg::Nick { old, new, .. } => vec![old.as_str(), new.as_str()],
        ServerMsg::Join { name, .. } | ServerMsg::Leave { name, .. } => vec![name.as_str()],
        ServerMsg::Crowd { joined, left, .. } => {
            joined.iter().chain(left).map(String::as_str).collect()
        }
        _ => vec![],
    }
}

/// Every string in a JSON value, run together.
fn raw_strings(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a.iter().map(raw_strings).collect(),
        serde_json::Value::Object(o) => o.values().map(raw_strings).collect(),
        _ => String::new(),
    }
}

/// What another host (or anyone who can publish on the room's subject) may put on a
/// clustered room's log: any bytes, or entries with any names, texts, hosts and seats.
fn log_entry() -> impl Strategy<Value = Vec<u8>> {
    use serde_json::json;
    let name = "[a-zA-Z\u{300}\u{202e}\u{1b} *:]{0,12}";
    let event = prop_oneof![
        (name, ".{0,40}", proptest::option::of(name)).prop_map(|(from, text, held)| {
            let mut msg = json!({"t": "msg", "id": 0, "ts": 0, "from": from, "text": text});
            if let Some(held) = held {
                msg["held"] = json!(held);
            }
            msg
        }),
        name.prop_map(|n| json!({"t": "join", "id": 0, "ts": 0, "name": n})),
        name.prop_map(|n| json!({"t": "leave", "id": 0, "ts": 0, "name": n})),
        (name, name).prop_map(|(o, n)| json!({"t": "nick", "id": 0, "ts": 0, "old": o, "new": n})),
        (name, name, ".{0,20}").prop_map(|(f, t, x)| {
            json!({"t": "private", "id": 0, "ts": 0, "from": f, "to": t, "text": x})
        }),
        (name, ".{0,20}")
            .prop_map(|(b, x)| json!({"t": "topic", "id": 0, "ts": 0, "by": b, "text": x})),
        (
            proptest::collection::vec(name, 0..4),
            proptest::collection::vec(name, 0..4)
        )
            .prop_map(|(j, l)| json!({"t": "crowd", "id": 0, "ts": 0, "joined": j, "left": l})),
    ];
    let reach = prop_oneof![
        Just(json!("room")),
        Just(json!("others")),
        Just(json!({"echo": {"cid": "c"}})),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        (
            event,
            prop_oneof![
                Just("h1".to_owned()),
                Just("h2".to_owned()),
                Just(String::new()),
                Just("h\u{1b}[2J\u{202e}".to_owned()),
                Just("h".repeat(5000)),
            ],
            0u64..4,
            reach,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(event, host, peer, reach, origin, held)| {
                let mut entry = json!({
                    "event": event, "host": host, "peer": peer, "reach": reach, "held": held
                });
                if origin {
                    entry["origin"] = json!(["s1", "c1"]);
                }
                serde_json::to_vec(&entry).unwrap()
            }),
    ]
}

proptest! {
    /// A clustered room takes whatever its log hands over without a panic, numbers
    /// only forward, and never sends anyone an escape sequence or a bidi override.
    #[test]
    fn a_clustered_room_takes_any_log_entry(
        entries in proptest::collection::vec((log_entry(), 1u64..6), 1..40),
    ) {
        use tchat::server::room::Entry;
        let mut room = Room::clustered("e".into(), Rules::default(), std::sync::Arc::from("h1"));
        for (peer, name) in [(1u64, "ana"), (2, "bo")] {
            let hello = ClientMsg::Hello {
                v: 1,
                name: name.into(),
                client: None,
                session: Some(format!("s{peer}")),
                since: None,
            };
            let frame = Frame::Line(hello.encode().trim_end().to_owned());
            let Greeted::Tchat(hello) = session::greeted(Some(frame)) else { unreachable!() };
            room.seat(peer, Arrival { hello: Some(hello), addr: None, mark: room.next_event() }, 0);
        }
        let mut next = room.next_event();
        for (bytes, step) in entries {
            let Ok(entry) = serde_json::from_slice::<Entry>(&bytes) else { continue };
            let before = room.next_event();
            let id = next;
            next += step;
            for action in room.apply(id, entry, true, 0) {
                if let Action::Send(_, Outgoing::Event(event)) = action {
                    let raw = raw_strings(&serde_json::to_value(&event).unwrap());
                    prop_assert!(!raw.contains('\u{1b}') && !raw.contains('\u{202e}'), "{event:?}");
                    // Every name shown is one a room would give (no spaces, no leading
                    // `*`: nothing that reads as the room's own lines or a second name).
                    for name in event_names(&event) {
                        let checked = tchat::names::check(name).ok();
                        prop_assert_eq!(checked.as_deref(), Some(name), "{:?}", event);
                    }
                    // A held key is the room's own making, short: never one the entry
                    // brought along.
                    if let Some(key) = event.held() {
                        prop_assert!(key.len() <= 64 && key.starts_with('h'), "{key:?}");
                    }
                }
            }
            prop_assert!(room.next_event() >= before);
        }
    }
}
