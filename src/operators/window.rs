//! Event-time windows: which windows a record belongs to, named by their ends.
//!
//! A window is the half-open event-time range `[end - size, end)` and is named by its
//! `end`, which is also the `time` printed with its results: every result row covers
//! the events strictly before its `time`. The global window, a running total over
//! everything, ends at [`GLOBAL_END`].

use crate::time::{Duration, Millis};

/// The end of the global window: it closes only when the input ends.
pub const GLOBAL_END: Millis = Millis::MAX;

/// The latest end a timed window can have. Window arithmetic saturates here, so that an
/// event time near the end of `u64` (which parsers reject, but operators must not trust)
/// never wraps into 1970, never collides with [`GLOBAL_END`], and `end - 1` is a time.
pub const LAST_END: Millis = GLOBAL_END - 1;

/// How records are grouped in event time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Windowing {
    /// One window over all of time.
    Global,
    /// Back-to-back windows of `size`.
    Tumbling {
        /// Window length.
        size: Duration,
    },
    /// Windows of `size` starting every `slide`.
    Sliding {
        /// Window length.
        size: Duration,
        /// Distance between window starts.
        slide: Duration,
    },
}

impl Windowing {
    /// The windowing that `--window` and `--slide` describe.
    pub fn from_flags(window: Option<Duration>, slide: Option<Duration>) -> Result<Self, String> {
        match (window, slide) {
            (None, None) => Ok(Windowing::Global),
            (None, Some(_)) => Err("--slide needs --window".into()),
            (Some(size), None) => Ok(Windowing::Tumbling { size }),
            (Some(size), Some(slide)) if slide == size => Ok(Windowing::Tumbling { size }),
            (Some(size), Some(slide)) => {
                if slide.millis() > size.millis() {
                    Err(format!(
                        "--slide {slide} is longer than --window {size}: events would fall between windows"
                    ))
                } else if size.millis() % slide.millis() != 0 {
                    Err(format!("--window {size} must be a whole multiple of --slide {slide}"))
                } else {
                    Ok(Windowing::Sliding { size, slide })
                }
            }
        }
    }

    /// Calls `each` with the end of every window that contains event time `time`, in
    /// increasing order. Ends saturate at [`LAST_END`] (reported once).
    #[inline]
    pub fn for_each_window(&self, time: Millis, mut each: impl FnMut(Millis)) {
        match *self {
            Windowing::Global => each(GLOBAL_END),
            Windowing::Tumbling { size } => each(first_end(time, size.millis())),
            Windowing::Sliding { size, slide } => {
                let (size, slide) = (size.millis(), slide.millis());
                let first = first_end(time, slide);
                let limit = first.saturating_add(size);
                let mut end = first;
                loop {
                    each(end);
                    match end.checked_add(slide) {
                        Some(next) if next < limit && next <= LAST_END => end = next,
                        _ => break,
                    }
                }
            }
        }
    }

    /// The window length, if any; the global window has none.
    pub fn size(&self) -> Option<Duration> {
        match *self {
            Windowing::Global => None,
            Windowing::Tumbling { size } | Windowing::Sliding { size, .. } => Some(size),
        }
    }
}

/// The end of the first window of the grid of `step` that contains `time`.
#[inline]
fn first_end(time: Millis, step: Millis) -> Millis {
    (time - time % step).saturating_add(step).min(LAST_END)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(w: Windowing, t: Millis) -> Vec<Millis> {
        let mut v = Vec::new();
        w.for_each_window(t, |e| v.push(e));
        v
    }

    #[test]
    fn tumbling_and_sliding_windows_contain_the_time() {
        let tumbling = Windowing::Tumbling { size: Duration(60_000) };
        assert_eq!(ends(tumbling, 0), vec![60_000]);
        assert_eq!(ends(tumbling, 59_999), vec![60_000]);
        assert_eq!(ends(tumbling, 60_000), vec![120_000]);
        let sliding = Windowing::Sliding { size: Duration(600_000), slide: Duration(60_000) };
        for t in [0, 59_999, 60_000, 1_234_567] {
            let e = ends(sliding, t);
            assert_eq!(e.len(), 10);
            for end in e {
                assert!(end <= t + 600_000 && t < end, "{t} in window ending {end}");
            }
        }
        assert_eq!(ends(Windowing::Global, 5), vec![GLOBAL_END]);
    }

    #[test]
    fn window_ends_saturate_instead_of_wrapping() {
        let hour = Duration(3_600_000);
        for t in [u64::MAX, u64::MAX - 1, LAST_END, LAST_END - 3_600_000] {
            for w in [
                Windowing::Tumbling { size: hour },
                Windowing::Sliding { size: hour, slide: Duration(60_000) },
            ] {
                let e = ends(w, t);
                assert!(!e.is_empty(), "{w:?} at {t}");
                assert!(e.windows(2).all(|p| p[0] < p[1]), "increasing: {e:?}");
                assert!(e.iter().all(|&end| end > t.min(LAST_END - 1) && end <= LAST_END), "{t}: {e:?}");
            }
        }
    }

    #[test]
    fn flags_are_checked() {
        let m = |s: &str| Some(s.parse::<Duration>().unwrap());
        assert_eq!(Windowing::from_flags(None, None), Ok(Windowing::Global));
        assert!(Windowing::from_flags(m("1m"), m("7s")).is_err());
        assert!(Windowing::from_flags(m("1m"), m("2m")).is_err());
        assert!(Windowing::from_flags(None, m("1m")).is_err());
        assert_eq!(
            Windowing::from_flags(m("10m"), m("1m")),
            Ok(Windowing::Sliding { size: Duration(600_000), slide: Duration(60_000) })
        );
    }
}
