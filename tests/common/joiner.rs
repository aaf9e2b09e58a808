//! A tchat joiner driven by a test: the real client (`tchat::client`), which rejoins by
//! itself and keeps every event it passes on.

use std::time::Duration;

use tchat::client::{self, Command, NetEvent, Retry};
use tchat::protocol::ServerMsg;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A tchat joiner that rejoins by itself, keeping every event it passes on.
pub struct Joiner {
    pub h: client::Handle,
    /// The name the room gave it.
    pub name: String,
    /// Every event it passed on, in order.
    pub seen: Vec<NetEvent>,
}

impl Joiner {
    pub async fn join(addr: &str, name: &str) -> Joiner {
        Joiner::join_any(&[addr], name).await
    }

    /// Join at the first of `addrs` (the hosts of one room); a rejoin tries them all,
    /// the one that answered first first.
    pub async fn join_any(addrs: &[&str], name: &str) -> Joiner {
        let addr = addrs[0];
        let tcp = TcpStream::connect(addr).await.unwrap();
        // Nothing remembered across runs; within one, the host's key is held to.
        let trust = tchat::link::Trust::new(None, None, false);
        let (stream, _) = tchat::link::secure(tcp, addr, &trust).await.unwrap();
        let retry = Retry {
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
            after_closing: true,
        };
        let mut j = Joiner {
            name: String::new(),
            h: client::join(
                stream,
                addrs.iter().map(|a| a.to_string()).collect(),
                name.into(),
                retry,
                trust,
            ),
            seen: Vec::new(),
        };
        let welcome = j
            .until(Duration::from_secs(10), |e| {
                matches!(e, NetEvent::Server(ServerMsg::Welcome { .. }))
            })
            .await;
        if let NetEvent::Server(ServerMsg::Welcome { name, .. }) = welcome {
            j.name = name;
        }
        j
    }

    pub fn say(&self, text: &str, cid: &str) {
        let say = Command::Say {
            text: text.into(),
            cid: cid.into(),
        };
        self.h.commands.send(say).unwrap();
    }

    /// Take whatever has arrived, without waiting.
    pub fn drain(&mut self) {
        while let Ok(e) = self.h.events.try_recv() {
            self.seen.push(e);
        }
    }

    /// Wait (up to `within`) for an event that matches, and return it; every event is
    /// kept in `seen`.
    pub async fn until(&mut self, within: Duration, pred: impl Fn(&NetEvent) -> bool) -> NetEvent {
        let deadline = Instant::now() + within;
        loop {
            let e = tokio::time::timeout_at(deadline, self.h.events.recv())
                .await
                .unwrap_or_else(|_| panic!("nothing such within {within:?}: {:#?}", self.seen))
                .expect("the connection task is running");
            self.seen.push(e.clone());
            if pred(&e) {
                return e;
            }
        }
    }

    /// What `pick` takes from each event seen so far, in order.
    pub fn picked<T>(&self, pick: impl Fn(&NetEvent) -> Option<T>) -> Vec<T> {
        self.seen.iter().filter_map(pick).collect()
    }

    /// The texts of the messages seen so far, from `from`.
    pub fn texts_from(&self, from: &str) -> Vec<String> {
        self.picked(|e| match e {
            NetEvent::Server(ServerMsg::Msg { from: f, text, .. }) if f == from => {
                Some(text.clone())
            }
            _ => None,
        })
    }

    /// Anything shown as raw text from a tchat host: protocol bytes leaking through.
    pub fn text_shown(&self) -> Vec<String> {
        self.picked(|e| match e {
            NetEvent::Text { text, .. } => Some(text.clone()),
            _ => None,
        })
    }

    pub fn notices(&self) -> Vec<String> {
        self.picked(|e| match e {
            NetEvent::Server(ServerMsg::Notice { text, .. }) => Some(text.clone()),
            _ => None,
        })
    }

    /// The texts of every message passed on, in order.
    pub fn texts(&self) -> Vec<String> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                NetEvent::Server(ServerMsg::Msg { text, .. }) => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn rooms(&self) -> Vec<String> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                NetEvent::Server(ServerMsg::Welcome { room, .. }) => Some(room.clone()),
                _ => None,
            })
            .collect()
    }
}

pub fn has_text(want: &str) -> impl Fn(&NetEvent) -> bool + '_ {
    move |e| matches!(e, NetEvent::Server(ServerMsg::Msg { text, .. }) if text == want)
}
