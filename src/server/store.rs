//! A durable room (`tchat --host --keep FILE`): the room's epoch, its event numbering,
//! its history and the lines it relayed, kept in an SQLite database, so that a host
//! restarted with the same file goes on with the same room.
//!
//! The room task writes what each of its turns changed ([`Journal`]) in one
//! transaction before anything of that turn is sent, so that no one is ever shown an
//! event the file does not have: after a crash, ids go on from where the file stops and
//! never name two different events. The database is in WAL mode with `synchronous =
//! NORMAL`: a commit is a write to the log, not a wait for the disk, and survives the
//! process being killed at any point; a power cut may lose the last moments' commits
//! (see `docs/PROTOCOL.md`).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};

use super::room::{Journal, Kept, Origin, Room, Rules, Saved};
use crate::protocol::ServerMsg;

/// An open durable room.
///
/// Each turn of the room is one row: the events it kept (in one blob, as the lines the
/// structured dialect sends, most of them the very bytes that were sent), who each was
/// from or about (packed in another), the lines it relayed (their ids, packed in a
/// third), and the room's event counter after it. A row a turn, not a row an event, and old rows let go of in bulk: a busy room's
/// turn costs one insert, so that keeping the room costs little next to sending it.
pub struct Store {
    db: Connection,
    /// Events and relayed lines to keep (the rest are forgotten, oldest first).
    keep_events: usize,
    keep_relayed: usize,
    /// The rows, oldest first: `(seq, events, lines relayed)`, and the totals, to know
    /// which rows both bounds have let go of without asking the database.
    rows: VecDeque<(i64, usize, usize)>,
    events_total: usize,
    relayed_total: usize,
    /// Turns written since old rows were last let go of.
    since_trim: usize,
    /// Reused for each turn's blobs.
    buf: Vec<u8>,
    meta_buf: Vec<u8>,
    relayed_buf: Vec<u8>,
}

/// Old rows are let go of once every this many turns.
const TRIM_EVERY: usize = 256;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// The layout's version, for a later one to recognise (and convert) this one.
const SCHEMA: i64 = 1;

impl Store {
    /// Open (or create) the room kept in `path`. A new file gets `new_epoch`; a file
    /// that holds a room gives it back as it was left, to `rules`' bounds.
    pub fn open(path: &Path, new_epoch: &str, rules: &Rules) -> Result<(Store, Saved), String> {
        let fresh = !path.exists();
        let db = Connection::open(path).map_err(|e| e.to_string())?;
        // Another host holding the file will not let go of it: do not wait long.
        db.busy_timeout(std::time::Duration::from_millis(200))
            .map_err(|e| e.to_string())?;
        if fresh {
            // It holds what people said, and the session ids that take seats over.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
            }
        }
        let mut store = Store {
            db,
            keep_events: rules.history,
            keep_relayed: rules.resend_memory,
            rows: VecDeque::new(),
            events_total: 0,
            relayed_total: 0,
            since_trim: 0,
            buf: Vec::new(),
            meta_buf: Vec::new(),
            relayed_buf: Vec::new(),
        };
        let saved = store.init(new_epoch, rules).map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
                "it is not a tchat room file (not an SQLite database)".to_owned()
            }
            rusqlite::Error::InvalidParameterName(why) => why,
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                "another tchat host is keeping a room in it".to_owned()
            }
            e => e.to_string(),
        })?;
        Ok((store, saved))
    }

    fn init(&mut self, new_epoch: &str, rules: &Rules) -> rusqlite::Result<Saved> {
        // One host at a time keeps a room: no locking of the file for each commit (and a
        // second host started on the same file is refused).
        self.db.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        // WAL: a commit is one append to the log.
        self.db.pragma_update(None, "journal_mode", "WAL")?;
        self.db.pragma_update(None, "synchronous", "NORMAL")?;
        // Take the file now, and keep it (EXCLUSIVE holds the lock once taken).
        self.db.execute_batch("BEGIN IMMEDIATE; COMMIT;")?;
        self.db.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS turns (
                 seq INTEGER PRIMARY KEY,
                 next_event INTEGER NOT NULL,
                 n_events INTEGER NOT NULL, events BLOB, meta BLOB,
                 n_relayed INTEGER NOT NULL, relayed BLOB);",
        )?;
        let meta = |db: &Connection, key: &str| -> rusqlite::Result<Option<String>> {
            db.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
        };
        if let Some(v) = meta(&self.db, "schema")?
            && v.parse::<i64>().ok() != Some(SCHEMA)
        {
            return Err(rusqlite::Error::InvalidParameterName(format!(
                "it was written by another version of tchat (layout {v})"
            )));
        }
        let epoch = match meta(&self.db, "epoch")? {
            Some(epoch) => epoch,
            None => {
                self.db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?1), ('epoch', ?2)",
                    params![SCHEMA.to_string(), new_epoch],
                )?;
                new_epoch.to_owned()
            }
        };
        // First the rows' sizes, to decode the events of only the rows the history
        // still wants (the relayed lines outlive them by far).
        let mut sizes: Vec<(i64, usize, usize)> = Vec::new();
        let mut next_event = 1;
        {
            let mut q = self
                .db
                .prepare("SELECT seq, next_event, n_events, n_relayed FROM turns ORDER BY seq")?;
            let mut rows = q.query([])?;
            while let Some(row) = rows.next()? {
                next_event = row.get::<_, i64>(1)? as u64;
                let (n_events, n_relayed) = (row.get::<_, i64>(2)?, row.get::<_, i64>(3)?);
                sizes.push((row.get(0)?, n_events as usize, n_relayed as usize));
            }
        }
        let mut wanted = 0;
        let events_from = sizes
            .iter()
            .rev()
            .find(|(_, n, _)| {
                wanted += n;
                wanted >= rules.history
            })
            .map_or(i64::MIN, |(seq, _, _)| *seq);
        let mut kept: VecDeque<Kept> = VecDeque::new();
        let mut relayed = Vec::new();
        {
            let mut q = self
                .db
                .prepare("SELECT seq, events, meta, relayed FROM turns ORDER BY seq")?;
            let mut rows = q.query([])?;
            while let Some(row) = rows.next()? {
                let seq: i64 = row.get(0)?;
                if seq >= events_from
                    && let Some(blob) = row.get_ref(1)?.as_blob_or_null()?
                {
                    let meta = row.get_ref(2)?.as_blob_or_null()?.unwrap_or_default();
                    read_kept(blob, meta, &mut kept);
                }
                if let Some(blob) = row.get_ref(3)?.as_blob_or_null()? {
                    unpack_relayed(blob, &mut relayed);
                }
            }
        }
        while kept.len() > rules.history {
            kept.pop_front();
        }
        for (seq, events, relayed) in sizes {
            self.note_row(seq, events, relayed);
        }
        let skip = relayed.len().saturating_sub(rules.resend_memory);
        relayed.drain(..skip);
        let topic = meta(&self.db, "topic")?;
        Ok(Saved {
            epoch,
            next_event,
            kept: kept.into(),
            relayed,
            topic,
        })
    }

    fn note_row(&mut self, seq: i64, events: usize, relayed: usize) {
        self.rows.push_back((seq, events, relayed));
        self.events_total += events;
        self.relayed_total += relayed;
    }

    /// Write down one turn of `room` (as its journal `j` says), in one transaction.
    /// `sent` holds the structured lines already made for the turn's events, by id and
    /// in order, so that an event sent is not encoded again to be kept.
    pub fn write(
        &mut self,
        j: &Journal,
        room: &Room,
        sent: &[(u64, Bytes)],
    ) -> rusqlite::Result<()> {
        self.buf.clear();
        self.meta_buf.clear();
        let mut sent = sent.iter().peekable();
        for k in room.newly_kept(j.kept) {
            while sent.next_if(|(id, _)| *id < k.id).is_some() {}
            match sent.next_if(|(id, _)| *id == k.id) {
                Some((_, line)) => self.buf.extend_from_slice(line),
                None => self.buf.extend_from_slice(k.event.encode().as_bytes()),
            }
            pack_meta(k, &mut self.meta_buf);
        }
        self.relayed_buf.clear();
        for (origin, id) in room.newly_relayed(j.relayed) {
            pack_relayed(origin, id, &mut self.relayed_buf);
        }
        self.since_trim += 1;
        let (upto, text_upto) = if self.since_trim >= TRIM_EVERY {
            self.let_go()
        } else {
            (None, None)
        };
        let tx = self.db.transaction()?;
        tx.prepare_cached(
            "INSERT INTO turns (next_event, n_events, events, meta, n_relayed, relayed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            j.next_event as i64,
            j.kept as i64,
            blob(&self.buf),
            blob(&self.meta_buf),
            j.relayed as i64,
            blob(&self.relayed_buf)
        ])?;
        let seq = tx.last_insert_rowid();
        if let Some(topic) = &j.topic {
            tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('topic', ?1)")?
                .execute([topic])?;
        }
        if let Some(upto) = upto {
            tx.prepare_cached("DELETE FROM turns WHERE seq <= ?1")?
                .execute([upto])?;
        }
        if let Some(upto) = text_upto {
            tx.prepare_cached(
                "UPDATE turns SET events = NULL, meta = NULL, n_events = 0
                 WHERE seq <= ?1 AND events IS NOT NULL",
            )?
            .execute([upto])?;
        }
        tx.commit()?;
        self.note_row(seq, j.kept, j.relayed);
        Ok(())
    }

    /// Forget the oldest rows both bounds have let go of, and the event text of the rows
    /// the history has let go of while their relayed ids are still kept (the ids
    /// outlive the history by far: their rows must not keep its text). The last seq of
    /// each.
    fn let_go(&mut self) -> (Option<i64>, Option<i64>) {
        self.since_trim = 0;
        let mut text_upto = None;
        // Events in this row and every later one.
        let mut from_here = self.events_total;
        for row in self.rows.iter_mut() {
            let after = from_here - row.1;
            if after < self.keep_events {
                break;
            }
            if row.1 > 0 {
                self.events_total -= row.1;
                row.1 = 0;
                text_upto = Some(row.0);
            }
            from_here = after;
        }
        let mut upto = None;
        // The newest row stays, whatever the bounds: it holds the event counter.
        while self.rows.len() > 1
            && let Some(&(seq, events, relayed)) = self.rows.front()
            && (events == 0 || self.events_total - events >= self.keep_events)
            && (relayed == 0 || self.relayed_total - relayed >= self.keep_relayed)
        {
            self.rows.pop_front();
            self.events_total -= events;
            self.relayed_total -= relayed;
            upto = Some(seq);
        }
        (upto, text_upto)
    }
}

/// A blob, or NULL for none.
fn blob(b: &[u8]) -> Option<&[u8]> {
    (!b.is_empty()).then_some(b)
}

/// Who a kept event is from or about, packed: its id (8 bytes, little-endian), a byte
/// of which parts follow (1: origin, 2: about, 4: audience), then each part's strings
/// as one length byte and the bytes (at most 255; sessions and cids are at most 64).
/// Events with none of them are not written.
fn pack_meta(k: &Kept, out: &mut Vec<u8>) {
    let flags = u8::from(k.origin.is_some())
        | u8::from(k.about.is_some()) << 1
        | u8::from(k.audience.is_some()) << 2;
    if flags == 0 {
        return;
    }
    out.extend_from_slice(&k.id.to_le_bytes());
    out.push(flags);
    let mut put = |part: Option<&str>| {
        let part = part.unwrap_or("").as_bytes();
        let part = &part[..part.len().min(255)];
        out.push(part.len() as u8);
        out.extend_from_slice(part);
    };
    if let Some((session, cid)) = &k.origin {
        put(Some(session));
        put(Some(cid));
    }
    if let Some(about) = &k.about {
        put(Some(about));
    }
    if let Some([a, b]) = &k.audience {
        put(a.as_deref());
        put(b.as_deref());
    }
}

/// Read back a row's events (`events`, one line each) with what [`pack_meta`] packed
/// for them. A line this version cannot read is left out, not fatal; so is a torn tail.
fn read_kept(events: &[u8], meta: &[u8], kept: &mut VecDeque<Kept>) {
    let mut parts: std::collections::HashMap<u64, MetaParts> = std::collections::HashMap::new();
    let mut rest = meta;
    while let Some((id, m)) = unpack_meta(&mut rest) {
        parts.insert(id, m);
    }
    for line in events.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(event) = ServerMsg::decode(&String::from_utf8_lossy(line)) else {
            continue;
        };
        let Some(id) = event.id() else { continue };
        let private = matches!(event, ServerMsg::Private { .. });
        let mut k = Kept::new(id, event);
        if let Some(m) = parts.remove(&id) {
            k.origin = m.origin;
            k.about = m.about;
            k.audience = m.audience;
        }
        if private && k.audience.is_none() {
            // Its seats were lost (a torn row): shown again to no one, not everyone.
            k.audience = Some([None, None]);
        }
        kept.push_back(k);
    }
}

#[derive(Default)]
struct MetaParts {
    origin: Option<Origin>,
    about: Option<Arc<str>>,
    audience: Option<[Option<Arc<str>>; 2]>,
}

fn unpack_meta(blob: &mut &[u8]) -> Option<(u64, MetaParts)> {
    let id = u64::from_le_bytes(blob.get(..8)?.try_into().ok()?);
    let flags = *blob.get(8)?;
    *blob = &blob[9..];
    let mut m = MetaParts::default();
    if flags & 1 != 0 {
        let (s, c) = (take_str(blob)?, take_str(blob)?);
        m.origin = Some((Arc::from(s), c.into()));
    }
    if flags & 2 != 0 {
        m.about = Some(Arc::from(take_str(blob)?));
    }
    if flags & 4 != 0 {
        let (a, b) = (take_str(blob)?, take_str(blob)?);
        let seat = |s: String| (!s.is_empty()).then(|| Arc::from(s));
        m.audience = Some([seat(a), seat(b)]);
    }
    Some((id, m))
}

/// One length byte and that many bytes, as text.
fn take_str(blob: &mut &[u8]) -> Option<String> {
    let (&len, rest) = blob.split_first()?;
    let part = rest.get(..len as usize)?;
    *blob = &rest[len as usize..];
    Some(String::from_utf8_lossy(part).into_owned())
}

/// A relayed line packed: the session's and the cid's lengths (one byte each: both are
/// at most 64 bytes), the two, and the id (8 bytes, little-endian).
fn pack_relayed((session, cid): &Origin, id: u64, out: &mut Vec<u8>) {
    for part in [session.as_bytes(), cid.as_bytes()] {
        let part = &part[..part.len().min(255)];
        out.push(part.len() as u8);
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&id.to_le_bytes());
}

/// Unpack what [`pack_relayed`] packed; a truncated tail is left out.
fn unpack_relayed(mut blob: &[u8], out: &mut Vec<(Origin, u64)>) {
    while !blob.is_empty() {
        let (Some(session), Some(cid)) = (take_str(&mut blob), take_str(&mut blob)) else {
            return;
        };
        let Some(id) = blob.get(..8) else { return };
        let id = u64::from_le_bytes(id.try_into().unwrap_or([0; 8]));
        blob = &blob[8..];
        out.push(((Arc::from(session), cid.into()), id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ClientMsg, Frame, Hello};
    use crate::server::room::Arrival;

    fn say(text: &str, cid: &str) -> Frame {
        let line = ClientMsg::Say {
            text: text.into(),
            cid: Some(cid.into()),
        }
        .encode();
        Frame::Line(line.trim_end().to_owned())
    }

    /// Seat `peer` as alice, of session `s-a`.
    fn seat_alice(room: &mut Room, peer: u64) {
        let hello = Hello {
            v: 1,
            name: "alice".into(),
            session: Some("s-a".into()),
            since: None,
        };
        let arrival = Arrival {
            hello: Some(hello),
            addr: None,
            mark: room.next_event(),
        };
        room.seat(peer, arrival, 0);
    }

    #[test]
    fn a_room_written_down_comes_back_as_it_was_left() {
        let dir = TempDir::new();
        let path = dir.0.join("room.db");
        let rules = Rules {
            history: 3,
            resend_memory: 2,
            burst: 0,
            rate: 0,
            ..Rules::default()
        };
        let (mut store, saved) = Store::open(&path, "e1", &rules).unwrap();
        assert_eq!(saved.epoch, "e1");
        assert_eq!(saved.next_event, 1);
        assert!(saved.kept.is_empty());
        let mut room = Room::restore(saved, rules.clone());
        room.keep_journal();
        seat_alice(&mut room, 1);
        // Written in two turns, as the room task would.
        for (i, turn) in [[1, 2], [3, 4]].iter().enumerate() {
            for n in turn {
                room.receive(1, say(&format!("line {n}"), &format!("c{n}")), 0);
            }
            let j = room.take_journal().unwrap();
            store.write(&j, &room, &[]).unwrap();
            assert!(
                room.take_journal().is_none(),
                "turn {i}: nothing more to write"
            );
        }
        let want: Vec<Kept> = room.newly_kept(3).cloned().collect();
        drop(store);
        // Another run, another epoch offered: the file's room wins.
        let (_, saved) = Store::open(&path, "e2", &rules).unwrap();
        assert_eq!(saved.epoch, "e1");
        assert_eq!(saved.next_event, room.next_event());
        assert_eq!(
            saved.kept, want,
            "the history, to its bound, origins and all"
        );
        let origins: Vec<(String, u64)> = saved
            .relayed
            .iter()
            .map(|((s, c), id)| (format!("{s}/{c}"), *id))
            .collect();
        assert_eq!(origins, [("s-a/c3".into(), 4), ("s-a/c4".into(), 5)]);
        // Restored, the room recognises a resend of a line it relayed before.
        let mut again = Room::restore(saved, rules);
        seat_alice(&mut again, 7);
        let before = again.next_event();
        again.receive(7, say("line 4", "c4"), 0);
        assert_eq!(again.next_event(), before, "not relayed again");
    }

    /// No flood limit; `history` events kept, `resend_memory` relayed lines.
    fn rules(history: usize, resend_memory: usize) -> Rules {
        Rules {
            history,
            resend_memory,
            burst: 0,
            rate: 0,
            ..Rules::default()
        }
    }

    /// A room kept in `path` where alice says `text` `turns` times, a turn each.
    fn alice_says(path: &Path, rules: &Rules, text: &str, turns: usize) -> (Store, Room) {
        let (mut store, saved) = Store::open(path, "e1", rules).unwrap();
        let mut room = Room::restore(saved, rules.clone());
        room.keep_journal();
        seat_alice(&mut room, 1);
        for n in 0..turns {
            room.receive(1, say(text, &format!("c{n}")), 0);
            let j = room.take_journal().unwrap();
            store.write(&j, &room, &[]).unwrap();
        }
        (store, room)
    }

    #[test]
    fn old_rows_go_once_both_bounds_have_let_go_of_them() {
        let dir = TempDir::new();
        let path = dir.0.join("room.db");
        let rules = rules(3, 5);
        let (store, room) = alice_says(&path, &rules, "x", TRIM_EVERY * 2 + 10);
        let rows: i64 = store
            .db
            .query_row("SELECT count(*) FROM turns", [], |r| r.get(0))
            .unwrap();
        // At most what the bounds keep (5 relayed lines, a line a turn) and the turns
        // since the last letting go.
        assert!(rows <= (5 + TRIM_EVERY) as i64, "{rows} rows");
        drop(store);
        let (_, saved) = Store::open(&path, "e2", &rules).unwrap();
        assert_eq!(saved.kept.len(), 3);
        assert_eq!(saved.relayed.len(), 5);
        assert_eq!(saved.next_event, room.next_event());
    }

    #[test]
    fn the_file_keeps_the_text_of_no_more_events_than_the_history_wants() {
        let dir = TempDir::new();
        let path = dir.0.join("room.db");
        // The history keeps 3 events; the lines relayed are remembered far longer.
        let rules = rules(3, 100_000);
        let (store, _) = alice_says(&path, &rules, &"x".repeat(1000), TRIM_EVERY * 3);
        let text: i64 = store
            .db
            .query_row(
                "SELECT coalesce(sum(length(events)), 0) FROM turns",
                [],
                |r| r.get(0),
            )
            .unwrap();
        // What the history wants, and the turns since old text was last let go of.
        let most = (3 + TRIM_EVERY as i64) * 1200;
        assert!(text <= most, "{text} bytes of event text kept");
        drop(store);
        // And what is needed is all still there.
        let (_, saved) = Store::open(&path, "e2", &rules).unwrap();
        assert_eq!(saved.kept.len(), 3);
        assert_eq!(saved.relayed.len(), TRIM_EVERY * 3);
    }

    #[test]
    fn a_private_message_whose_seats_were_lost_is_shown_to_no_one() {
        let private = ServerMsg::Private {
            id: 7,
            ts: 0,
            from: "xena".into(),
            to: "yuri".into(),
            text: "secret".into(),
            cid: None,
        };
        let mut kept = VecDeque::new();
        // Its seats were in the part of the row that was torn off.
        read_kept(private.encode().as_bytes(), &[], &mut kept);
        assert_eq!(kept[0].audience, Some([None, None]));
    }

    #[test]
    fn packed_relayed_lines_unpack_and_a_torn_tail_is_left_out() {
        let mut blob = Vec::new();
        let a: Origin = (Arc::from("s-a"), Box::from("c1"));
        let b: Origin = (Arc::from("s\tb\n"), Box::from("你"));
        pack_relayed(&a, 7, &mut blob);
        pack_relayed(&b, u64::MAX, &mut blob);
        let mut out = Vec::new();
        unpack_relayed(&blob, &mut out);
        assert_eq!(out, [(a.clone(), 7), (b, u64::MAX)]);
        let mut torn = Vec::new();
        unpack_relayed(&blob[..blob.len() - 3], &mut torn);
        assert_eq!(torn, [(a, 7)]);
    }

    #[test]
    fn a_second_host_on_the_same_file_is_refused() {
        let dir = TempDir::new();
        let path = dir.0.join("room.db");
        let (first, _) = Store::open(&path, "e1", &Rules::default()).unwrap();
        let err = Store::open(&path, "e2", &Rules::default()).unwrap_err();
        assert!(err.contains("another tchat host"), "{err}");
        // The same with a file that already held a room when the first opened it.
        drop(first);
        let (_first, _) = Store::open(&path, "e1", &Rules::default()).unwrap();
        let err = Store::open(&path, "e2", &Rules::default()).unwrap_err();
        assert!(err.contains("another tchat host"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_room_is_refused_with_a_reason() {
        let dir = TempDir::new();
        let path = dir.0.join("notes.txt");
        std::fs::write(
            &path,
            "these are my notes, not a database, and quite long enough",
        )
        .unwrap();
        let err = Store::open(&path, "e1", &Rules::default()).unwrap_err();
        assert!(err.contains("not a tchat room file"), "{err}");
    }

    /// A fresh directory under the system's temporary one, removed when dropped.
    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "tchat-store-{}-{:x}",
                std::process::id(),
                rand::random::<u64>()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
