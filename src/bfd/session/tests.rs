//! Sessions driven on a virtual clock, against each other or a scripted neighbor.

use super::*;
use crate::bfd::packet::Packet;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Two sessions joined by a wire that can be cut, on one virtual clock.
struct Link {
    now: Instant,
    a: Session,
    b: Session,
    cut: bool,
    /// Packets each side sent: (when, packet).
    sent_a: Vec<(Instant, Packet)>,
    sent_b: Vec<(Instant, Packet)>,
    events_a: Vec<(Instant, Transition)>,
    events_b: Vec<(Instant, Transition)>,
}

impl Link {
    fn new(ca: Config, cb: Config) -> Link {
        let now = Instant::now();
        Link {
            now,
            a: Session::new(now, ca, 11, 1),
            b: Session::new(now, cb, 22, 2),
            cut: false,
            sent_a: vec![],
            sent_b: vec![],
            events_a: vec![],
            events_b: vec![],
        }
    }

    /// Runs every deadline up to `now + d`, delivering packets at once unless cut.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.exchange();
            let next = [self.a.poll_timeout(), self.b.poll_timeout()].into_iter().flatten().min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = end;
        self.exchange();
    }

    fn exchange(&mut self) {
        loop {
            let mut moved = false;
            while let Some(p) = self.a.poll_transmit() {
                moved = true;
                self.sent_a.push((self.now, p.clone()));
                if !self.cut {
                    self.b.handle_packet(self.now, &Packet::decode(&p.encode()).unwrap());
                }
            }
            while let Some(p) = self.b.poll_transmit() {
                moved = true;
                self.sent_b.push((self.now, p.clone()));
                if !self.cut {
                    self.a.handle_packet(self.now, &Packet::decode(&p.encode()).unwrap());
                }
            }
            while let Some(e) = self.a.poll_event() {
                self.events_a.push((self.now, e));
            }
            while let Some(e) = self.b.poll_event() {
                self.events_b.push((self.now, e));
            }
            if !moved {
                break;
            }
        }
    }
}

#[test]
fn two_sessions_come_up_through_init_and_then_run_at_the_configured_rate() {
    let mut l = Link::new(Config::default(), Config::default());
    l.run(ms(3000));
    assert_eq!((l.a.state(), l.b.state()), (State::Up, State::Up));
    let states: Vec<State> = l.events_a.iter().map(|(_, e)| e.to).collect();
    assert!(states == [State::Init, State::Up] || states == [State::Up], "Down → (Init) → Up: {states:?}");
    assert_eq!((l.a.remote_discriminator(), l.b.remote_discriminator()), (22, 11));
    // Coming Up lowered the rate from 1 s to 300 ms with a Poll Sequence, answered by Final.
    assert!(l.sent_a.iter().any(|(_, p)| p.poll) && l.sent_b.iter().any(|(_, p)| p.final_));
    assert!(!l.sent_a.iter().chain(&l.sent_b).any(|(_, p)| p.poll && p.final_), "never P and F together");
    assert_eq!(l.a.detection_time(), Some(ms(900)));
    assert_eq!(l.a.transmit_interval(), ms(300));
    let before = l.sent_a.len();
    l.run(ms(3000));
    let n = l.sent_a.len() - before;
    // 300 ms less 0–25 % jitter: between 10 and 14 packets in 3 s.
    assert!((10..=14).contains(&n), "{n} packets in 3 s at 300 ms");
    let gaps: Vec<Duration> = l.sent_a[before..].windows(2).map(|w| w[1].0 - w[0].0).filter(|g| !g.is_zero()).collect();
    assert!(gaps.iter().all(|g| *g >= ms(225) && *g <= ms(300)), "jittered gaps in 225..=300 ms: {gaps:?}");
}

#[test]
fn a_cut_link_is_detected_after_the_detection_time_and_not_before() {
    let mut l = Link::new(Config::default(), Config::default());
    l.run(ms(5000));
    assert_eq!(l.a.state(), State::Up);
    let last_rx = l.sent_b.last().unwrap().0;
    l.cut = true;
    l.run(ms(2000));
    let (at, e) = l.events_a.last().copied().unwrap();
    assert_eq!((e.from, e.to, e.diag), (State::Up, State::Down, Diag::DETECTION_TIME_EXPIRED));
    assert_eq!(at - last_rx, ms(900), "3 × 300 ms after the last packet heard");
    assert_eq!(l.a.remote_discriminator(), 0, "forgotten at detection (§6.8.1)");
    // Down: back to one packet a second at most, and saying why.
    let down: Vec<&(Instant, Packet)> = l.sent_a.iter().filter(|(t, _)| *t > at).collect();
    assert!(down.iter().all(|(_, p)| p.state == State::Down && p.diag == Diag::DETECTION_TIME_EXPIRED));
    assert!(down.iter().all(|(_, p)| p.desired_min_tx == 1_000_000));
    // The wire back: up again, the diagnostic cleared.
    l.cut = false;
    l.run(ms(4000));
    assert_eq!((l.a.state(), l.a.diag()), (State::Up, Diag::NONE));
}

#[test]
fn while_not_up_a_session_sends_at_most_one_packet_a_second() {
    let now = Instant::now();
    let mut s = Session::new(now, Config { transmit_interval: ms(50), ..Config::default() }, 5, 9);
    let mut t = now;
    let mut sent = vec![];
    while t < now + ms(10_000) {
        s.handle_timeout(t);
        while let Some(p) = s.poll_transmit() {
            assert_eq!((p.state, p.your_discriminator, p.desired_min_tx), (State::Down, 0, 1_000_000));
            sent.push(t);
        }
        t = s.poll_timeout().unwrap();
    }
    assert!((10..=14).contains(&sent.len()), "{} packets in 10 s alone", sent.len());
    assert!(sent.windows(2).all(|w| w[1] - w[0] >= ms(750)));
}

#[test]
fn a_neighbor_going_admin_down_takes_the_session_down_with_diagnostic_3() {
    let mut l = Link::new(Config::default(), Config::default());
    l.run(ms(4000));
    l.b.admin_down(l.now);
    l.run(ms(10));
    let (_, e) = l.events_a.last().copied().unwrap();
    assert_eq!((e.to, e.diag), (State::Down, Diag::NEIGHBOR_SIGNALED_DOWN));
    assert_eq!(l.a.remote_state(), State::AdminDown);
    assert_eq!(l.b.state(), State::AdminDown);
    // An AdminDown session ignores what it hears and sends nothing more.
    let n = l.sent_b.len();
    l.run(ms(5000));
    assert_eq!(l.sent_b.len(), n);
    assert_eq!(l.a.state(), State::Down, "not Up again against an AdminDown neighbor");
}

#[test]
fn a_slower_rate_waits_for_the_final_and_a_poll_is_answered_at_once() {
    let mut l = Link::new(Config::default(), Config::default());
    l.run(ms(4000));
    assert!(!l.a.polling);
    // Cut first, so that the Final cannot come back: the old, faster rate stays in force.
    l.cut = true;
    l.a.set_config(l.now, Config { transmit_interval: ms(600), ..Config::default() });
    assert_eq!(l.a.transmit_interval(), ms(300), "slower only once the neighbor has answered");
    let from = l.sent_a.len();
    l.run(ms(350));
    assert!(l.sent_a.len() > from, "a packet within one interval");
    let p = &l.sent_a.last().unwrap().1;
    assert!(p.poll && p.desired_min_tx == 600_000);
    l.cut = false;
    let asked = l.now;
    l.run(ms(400));
    // B answered the first P at once with F (not at its own next interval).
    let answer = l.sent_b.iter().find(|(t, p)| *t >= asked && p.final_).unwrap();
    let poll = l.sent_a.iter().find(|(t, p)| *t >= asked && p.poll).unwrap();
    assert_eq!(answer.0, poll.0);
    assert_eq!(l.a.transmit_interval(), ms(600));
    assert!(!l.a.polling);
    // B now expects A's packets at the slower rate: 3 × 600 ms.
    assert_eq!(l.b.detection_time(), Some(ms(1800)));
}

#[test]
fn a_shorter_detection_time_waits_for_the_final() {
    let mut l = Link::new(Config::default(), Config::default());
    l.run(ms(4000));
    l.cut = true;
    l.a.set_config(l.now, Config { receive_interval: ms(100), ..Config::default() });
    // B still sends every 300 ms until it has seen the new value: detection stays 900 ms.
    assert_eq!(l.a.detection_time(), Some(ms(900)));
    l.cut = false;
    l.run(ms(1000));
    assert_eq!(l.a.detection_time(), Some(ms(900)), "B's DesiredMinTx (300 ms) still bounds it");
    assert_eq!(l.b.transmit_interval(), ms(300));
}

#[test]
fn a_passive_session_speaks_only_after_hearing_the_neighbor() {
    let mut l = Link::new(Config { passive: true, ..Config::default() }, Config::default());
    l.b.admin_down(l.now);
    l.b = Session::new(l.now, Config { passive: true, ..Config::default() }, 22, 2);
    l.run(ms(5000));
    assert!(l.sent_a.is_empty() && l.sent_b.is_empty(), "two passive sessions stay silent");
    l.b.set_config(l.now, Config::default());
    l.run(ms(5000));
    assert!(!l.sent_a.is_empty());
    assert_eq!((l.a.state(), l.b.state()), (State::Up, State::Up));
}

#[test]
fn packets_for_another_discriminator_or_asking_for_silence_are_honoured() {
    let now = Instant::now();
    let mut s = Session::new(now, Config::default(), 5, 9);
    let mut p = Packet {
        diag: Diag::NONE,
        state: State::Down,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 77,
        your_discriminator: 6,
        desired_min_tx: 1_000_000,
        required_min_rx: 300_000,
        required_min_echo_rx: 0,
    };
    s.handle_packet(now, &p);
    assert_eq!((s.state(), s.remote_discriminator()), (State::Down, 0), "not ours: ignored");
    p.your_discriminator = 0;
    s.handle_packet(now, &p);
    assert_eq!((s.state(), s.remote_discriminator()), (State::Init, 77));
    p.required_min_rx = 0;
    p.your_discriminator = 5;
    s.handle_packet(now, &p);
    s.handle_timeout(now + ms(5000));
    assert!(s.poll_transmit().is_none() || s.poll_transmit().is_none());
    while s.poll_transmit().is_some() {}
    s.handle_timeout(now + ms(6000));
    assert!(s.poll_transmit().is_none(), "RequiredMinRx 0: the neighbor wants no packets");
}
