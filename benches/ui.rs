//! What the screen costs: one frame with a short and a very long scrollback, and a
//! burst of arriving messages while someone types.
//!
//! ```sh
//! cargo bench --bench ui
//! ```

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use tchat::app::{App, Msg, Net, Role, update};
use tchat::protocol::ServerMsg;

const T0: i64 = 1_704_110_460_000;

/// Messages of every kind of width: short, long enough to wrap, CJK and emoji.
fn text(i: u64) -> String {
    match i % 4 {
        0 => format!("message {i}: short"),
        1 => format!(
            "message {i}: a longer line that wraps on an ordinary terminal, because people \
             do write paragraphs in chat now and then, and the pane has to lay them out"
        ),
        2 => format!("メッセージ {i}: 日本語の文章は二列の幅で表示されます。折り返しも正しく。"),
        _ => format!("message {i}: emoji 🎉🎉 and 中文 mixed with words"),
    }
}

fn net(i: u64) -> Msg {
    Msg::Net(Net::Server(ServerMsg::Msg {
        id: i + 1,
        ts: T0 + i as i64,
        from: format!("user{}", i % 7),
        text: text(i),
        cid: None,
        held: None,
    }))
}

/// A joiner's screen, in the room, with `n` messages in the scrollback.
fn app_with(n: u64, w: u16, h: u16) -> App {
    let mut app = App::new(
        Role::Joiner {
            address: "10.0.0.2:7878".into(),
        },
        "alice".into(),
        w,
        h,
        0,
    );
    update(
        &mut app,
        Msg::Net(Net::Server(ServerMsg::Welcome {
            v: 1,
            room: "bench".into(),
            name: "alice".into(),
            asked: None,
            members: vec!["alice".into(), "bob".into()],
            max_line: 8192,
            pace: None,
            ts: None,
            topic: None,
        })),
        T0,
    );
    for i in 0..n {
        update(&mut app, net(i), T0);
    }
    app
}

fn frame(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    // 10 messages fill a third of the pane; from about 30 it is full, and the cost
    // should stay flat however long the scrollback grows.
    for n in [10u64, 1_000, 100_000] {
        let mut app = app_with(n, 120, 40);
        // As the event loop does before a frame: what shows is laid out and kept.
        app.settle();
        let mut term = Terminal::new(TestBackend::new(120, 40)).expect("a test terminal");
        group.bench_with_input(BenchmarkId::from_parameter(n), &app, |b, app| {
            b.iter(|| {
                term.draw(|f| tchat::ui::render(black_box(app), f))
                    .expect("draw");
            })
        });
    }
    group.finish();
}

/// A burst while typing: the event loop folds up to 512 waiting network events into
/// one frame, so a key typed during a burst shows after at most one batch and one
/// frame. `batch_then_key` is that worst case; `all_10000` is the whole burst.
fn burst(c: &mut Criterion) {
    let mut group = c.benchmark_group("burst");
    group.sample_size(20);
    let mut term = Terminal::new(TestBackend::new(120, 40)).expect("a test terminal");
    group.bench_function("batch_then_key", |b| {
        b.iter_batched(
            || app_with(1000, 120, 40),
            |mut app| {
                for i in 0..512 {
                    update(&mut app, net(10_000 + i), T0);
                }
                let key = Msg::Key(KeyEvent::new(KeyCode::Char('x'), KeyModifiers::NONE));
                update(&mut app, key, T0);
                app.settle();
                term.draw(|f| tchat::ui::render(&app, f)).expect("draw");
                app
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function("all_10000", |b| {
        b.iter_batched(
            || app_with(0, 120, 40),
            |mut app| {
                for i in 0..10_000 {
                    update(&mut app, net(i), T0);
                    if i % 512 == 511 {
                        app.settle();
                        term.draw(|f| tchat::ui::render(&app, f)).expect("draw");
                    }
                }
                app
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, frame, burst);
criterion_main!(benches);
