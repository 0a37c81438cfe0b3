//! Check T4 (signal side) and C2: the stop flag, and SIGINT/SIGTERM setting it once asked to.

use whet::train::StopFlag;

#[test]
fn the_flag_records_the_request() {
    let f = StopFlag::new();
    assert_eq!(f.requested(), None);
    let g = f.clone();
    g.request(2);
    assert_eq!(f.requested(), Some(2), "clones share the flag");
    f.request(15);
    assert_eq!(g.requested(), Some(15), "a second request just sets it again");
    let h = StopFlag::new();
    h.request(0);
    assert_eq!(h.requested(), Some(0), "a non-signal request still counts");
}

#[test]
fn sigterm_sets_the_flag_once_handlers_are_installed() {
    let f = StopFlag::new();
    f.install_signal_handlers().unwrap();
    assert_eq!(f.requested(), None);
    signal_hook::low_level::raise(signal_hook::consts::SIGTERM).unwrap();
    assert_eq!(f.requested(), Some(15));
    // The process is still alive and a second signal only sets the flag again.
    signal_hook::low_level::raise(signal_hook::consts::SIGINT).unwrap();
    assert_eq!(f.requested(), Some(2));
}
