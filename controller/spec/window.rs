//! Move windows: the hours in which moves may start.
//!
//! Change management runs on windows (migrations at night, at weekends);
//! `policy.moveWindows` declares them. This module validates the YAML form
//! (days, `HH:MM` start and end, an IANA time zone) into [`MoveWindow`]s
//! and answers, for any instant, whether a move may start and, if not, when
//! the next window opens ([`window_state`]). It is pure: the caller passes
//! the instant (the provider's clock, so the simulator's windows run on
//! simulated time).
//!
//! Time zones come from jiff with the IANA database bundled into the binary
//! (`tzdb-bundle-always`), so a Windows host, which has no system copy, and
//! a minimal container give the same answers. A window opens on each listed
//! day at `start` local time and closes at `end`; an `end` at or before
//! `start` is on the next day (`22:00`-`06:00` crosses midnight; a window
//! opening Friday 22:00 lasts until Saturday 06:00), and `start == end`
//! means 24 hours. Local times that do not exist or happen twice on a day
//! the clocks change are resolved as RFC 5545 does (jiff's "compatible"
//! rule): a time skipped by the spring change is moved forward by the gap,
//! a repeated time means its first occurrence.

use std::fmt;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};

use super::diag::{Diagnostic, Sink};
use super::load::{DocCtx, closest};
use super::raw::{MoveWindowRaw, Sp};

/// One declared move window, validated.
#[derive(Debug, Clone)]
pub struct MoveWindow {
    /// Days the window opens on, Monday first.
    pub days: [bool; 7],
    /// Local opening time.
    pub start: Time,
    /// Local closing time (on the next day when not after `start`).
    pub end: Time,
    /// The time zone, as written (an IANA name).
    pub time_zone: String,
    tz: TimeZone,
}

impl PartialEq for MoveWindow {
    fn eq(&self, other: &Self) -> bool {
        self.days == other.days
            && self.start == other.start
            && self.end == other.end
            && self.time_zone == other.time_zone
    }
}

impl MoveWindow {
    /// A window from parts; `None` when the time zone is unknown.
    pub fn new(days: [bool; 7], start: Time, end: Time, time_zone: &str) -> Option<MoveWindow> {
        let tz = jiff::tz::db().get(time_zone).ok()?;
        Some(MoveWindow {
            days,
            start,
            end,
            time_zone: time_zone.to_string(),
            tz,
        })
    }

    /// The opening and closing instants of the window that opens on `day`
    /// (a local date), if the window opens that day.
    fn on(&self, day: Date) -> Option<(Zoned, Zoned)> {
        let idx = day.weekday().to_monday_zero_offset();
        if !self
            .days
            .get(usize::try_from(idx).ok()?)
            .copied()
            .unwrap_or(false)
        {
            return None;
        }
        let open = day.to_datetime(self.start).to_zoned(self.tz.clone()).ok()?;
        let end_day = if self.end <= self.start {
            day.tomorrow().ok()?
        } else {
            day
        };
        let close = end_day
            .to_datetime(self.end)
            .to_zoned(self.tz.clone())
            .ok()?;
        (close.timestamp() > open.timestamp()).then_some((open, close))
    }

    /// Every opening of this window that may matter at `now`: from the day
    /// before `now` (a window crossing midnight) to eight days after.
    fn around(&self, now: Timestamp) -> Vec<(Zoned, Zoned)> {
        let today = now.to_zoned(self.tz.clone()).date();
        let mut out = Vec::new();
        let mut day = today.yesterday().unwrap_or(today);
        for _ in 0..10 {
            if let Some(w) = self.on(day) {
                out.push(w);
            }
            match day.tomorrow() {
                Ok(d) => day = d,
                Err(_) => break,
            }
        }
        out
    }
}

impl fmt::Display for MoveWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<&str> = DAYS
            .iter()
            .zip(self.days)
            .filter(|(_, on)| *on)
            .map(|(d, _)| d.0)
            .collect();
        write!(
            f,
            "{} {}-{} {}",
            days.join(","),
            self.start.strftime("%H:%M"),
            self.end.strftime("%H:%M"),
            self.time_zone
        )
    }
}

/// Whether moves may start at an instant.
#[derive(Debug, Clone, PartialEq)]
pub enum WindowState {
    /// No windows are declared: moves may start at any time.
    Always,
    /// Inside a window, which closes at this instant (the latest close of
    /// the windows open now).
    Open {
        /// When the window closes, in its time zone.
        closes: Zoned,
    },
    /// Outside every window.
    Closed {
        /// When the next window opens, in its time zone; `None` if no
        /// window opens within a week (only when every opening falls into
        /// a clock change).
        opens: Option<Zoned>,
    },
}

impl WindowState {
    /// Whether a move may start.
    pub fn is_open(&self) -> bool {
        !matches!(self, WindowState::Closed { .. })
    }

    /// How long until the next window opens, from `now` (zero unless closed).
    pub fn wait(&self, now: Timestamp) -> Option<std::time::Duration> {
        match self {
            WindowState::Closed { opens: Some(z) } => {
                let d = z.timestamp().duration_since(now);
                Some(std::time::Duration::try_from(d).unwrap_or_default())
            }
            WindowState::Closed { opens: None } => None,
            _ => Some(std::time::Duration::ZERO),
        }
    }

    /// `opens Mon 22:00 Europe/Amsterdam`, or `opens at no time in the next week`.
    pub fn opens_text(&self) -> Option<String> {
        match self {
            WindowState::Closed { opens: Some(z) } => Some(format!("opens {}", local(z))),
            WindowState::Closed { opens: None } => {
                Some("no window opens in the coming week".to_string())
            }
            _ => None,
        }
    }
}

/// `Mon 22:00 Europe/Amsterdam`: a time as people read it in a window's zone.
pub fn local(z: &Zoned) -> String {
    let name = z.time_zone().iana_name().unwrap_or("UTC");
    format!("{} {name}", z.strftime("%a %H:%M"))
}

/// Whether a move may start at `now` under these windows, and until when
/// (or from when).
pub fn window_state(windows: &[MoveWindow], now: Timestamp) -> WindowState {
    if windows.is_empty() {
        return WindowState::Always;
    }
    let mut closes: Option<Zoned> = None;
    let mut opens: Option<Zoned> = None;
    for w in windows {
        for (open, close) in w.around(now) {
            if open.timestamp() <= now && now < close.timestamp() {
                if closes
                    .as_ref()
                    .is_none_or(|c| close.timestamp() > c.timestamp())
                {
                    closes = Some(close);
                }
            } else if open.timestamp() > now
                && opens
                    .as_ref()
                    .is_none_or(|o| open.timestamp() < o.timestamp())
            {
                opens = Some(open);
            }
        }
    }
    match closes {
        Some(closes) => WindowState::Open { closes },
        None => WindowState::Closed { opens },
    }
}

/// The instant `seconds` after `start` (the simulator's clock).
pub fn after(start: Timestamp, seconds: f64) -> Timestamp {
    let micros = (seconds.max(0.0) * 1e6).min(i64::MAX as f64) as i64;
    start
        .checked_add(SignedDuration::from_micros(micros))
        .unwrap_or(Timestamp::MAX)
}

const DAYS: [(&str, &str, Weekday); 7] = [
    ("mon", "monday", Weekday::Monday),
    ("tue", "tuesday", Weekday::Tuesday),
    ("wed", "wednesday", Weekday::Wednesday),
    ("thu", "thursday", Weekday::Thursday),
    ("fri", "friday", Weekday::Friday),
    ("sat", "saturday", Weekday::Saturday),
    ("sun", "sunday", Weekday::Sunday),
];

/// Parses `HH:MM` (24-hour clock); `24:00` only where `allow_24` (an end).
pub fn parse_clock(text: &str, allow_24: bool) -> Result<Time, String> {
    let t = text.trim();
    let bad = || format!("`{text}` is not a time of day; expected HH:MM on a 24-hour clock");
    let (h, m) = t.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u8 = h.parse().map_err(|_| bad())?;
    let m: u8 = m.parse().map_err(|_| bad())?;
    if allow_24 && h == 24 && m == 0 {
        return Ok(Time::midnight());
    }
    if h > 23 || m > 59 {
        return Err(format!(
            "`{text}` is not a time of day: hours run 00-23 and minutes 00-59"
        ));
    }
    Time::new(h as i8, m as i8, 0, 0).map_err(|_| bad())
}

/// Validates `policy.moveWindows`.
pub(crate) fn move_windows(
    ctx: &DocCtx,
    list: &Sp<Vec<Sp<MoveWindowRaw>>>,
    sink: &mut Sink,
) -> Vec<MoveWindow> {
    if list.value.is_empty() {
        sink.push(
            Diagnostic::new(
                ctx.at(list),
                "`moveWindows` is empty, so no move could ever start",
            )
            .with_help("omit `moveWindows` to let moves start at any time"),
        );
        return Vec::new();
    }
    list.value
        .iter()
        .filter_map(|w| move_window(ctx, w, sink))
        .collect()
}

fn move_window(ctx: &DocCtx, w: &Sp<MoveWindowRaw>, sink: &mut Sink) -> Option<MoveWindow> {
    let raw = &w.value;
    let before = sink.len();
    let mut days = [false; 7];
    if raw.days.is_empty() {
        sink.push(
            Diagnostic::new(ctx.at(w), "a move window needs at least one day in `days`")
                .with_help("for example `days: [mon, tue, wed, thu, fri]`"),
        );
    }
    for d in &raw.days {
        let word = d.value.trim().to_ascii_lowercase();
        match DAYS
            .iter()
            .position(|(short, long, _)| word == *short || word == *long)
        {
            Some(i) if days[i] => {
                sink.error(ctx.at(d), format!("`{}` is listed twice", d.value));
            }
            Some(i) => days[i] = true,
            None => {
                let mut diag = Diagnostic::new(ctx.at(d), format!("unknown day `{}`", d.value));
                diag = match closest(&word, DAYS.iter().flat_map(|(s, l, _)| [*s, *l])) {
                    Some(best) => diag.with_help(format!(
                        "did you mean `{best}`? days are mon, tue, wed, thu, fri, sat, sun"
                    )),
                    None => diag.with_help("days are mon, tue, wed, thu, fri, sat, sun"),
                };
                sink.push(diag);
            }
        }
    }
    let clock =
        |v: &Sp<String>, allow_24: bool, sink: &mut Sink| match parse_clock(&v.value, allow_24) {
            Ok(t) => Some(t),
            Err(msg) => {
                sink.push(Diagnostic::new(ctx.at(v), msg).with_help("for example \"22:00\""));
                None
            }
        };
    let start = clock(&raw.start, false, sink);
    let end = clock(&raw.end, true, sink);
    let name = raw.time_zone.value.trim();
    let tz = match jiff::tz::db().get(name) {
        Ok(tz) if !name.is_empty() => Some(tz),
        _ => {
            let names: Vec<String> = jiff::tz::db().available().map(|n| n.to_string()).collect();
            let mut diag = Diagnostic::new(
                ctx.at(&raw.time_zone),
                format!("unknown time zone `{}`", raw.time_zone.value),
            );
            diag = match closest(name, names.iter().map(String::as_str)) {
                Some(best) => diag.with_help(format!("did you mean `{best}`?")),
                None => diag.with_help(
                    "use an IANA time zone name such as `Europe/Amsterdam`, `America/New_York` or `UTC`",
                ),
            };
            sink.push(diag);
            None
        }
    };
    if sink.len() != before {
        return None;
    }
    Some(MoveWindow {
        days,
        start: start?,
        end: end?,
        time_zone: name.to_string(),
        tz: tz?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    fn win(days: &[usize], start: &str, end: &str, tz: &str) -> MoveWindow {
        let mut d = [false; 7];
        for i in days {
            d[*i] = true;
        }
        MoveWindow::new(
            d,
            parse_clock(start, false).expect("start"),
            parse_clock(end, true).expect("end"),
            tz,
        )
        .expect("zone")
    }

    const WEEKDAYS: &[usize] = &[0, 1, 2, 3, 4];

    fn opens(state: &WindowState) -> String {
        match state {
            WindowState::Closed { opens: Some(z) } => z.to_string(),
            other => panic!("expected closed, got {other:?}"),
        }
    }

    fn closes(state: &WindowState) -> String {
        match state {
            WindowState::Open { closes } => closes.to_string(),
            other => panic!("expected open, got {other:?}"),
        }
    }

    #[test]
    fn no_windows_means_always() {
        assert_eq!(
            window_state(&[], at("2026-01-05T12:00:00Z")),
            WindowState::Always
        );
    }

    #[test]
    fn a_window_across_midnight_is_open_on_both_sides_of_it() {
        let w = [win(WEEKDAYS, "22:00", "06:00", "Europe/Amsterdam")];
        // Monday 2026-01-05, Amsterdam is UTC+1 in winter.
        let s = window_state(&w, at("2026-01-05T12:00:00Z"));
        assert_eq!(
            opens(&s),
            "2026-01-05T22:00:00+01:00[Europe/Amsterdam]".to_string()
        );
        assert_eq!(
            s.opens_text().as_deref(),
            Some("opens Mon 22:00 Europe/Amsterdam")
        );
        assert_eq!(
            s.wait(at("2026-01-05T12:00:00Z")),
            Some(std::time::Duration::from_secs(9 * 3600))
        );
        // Monday 23:30 local and Tuesday 05:59 local: open until Tuesday 06:00.
        for t in ["2026-01-05T22:30:00Z", "2026-01-06T04:59:00Z"] {
            let s = window_state(&w, at(t));
            assert_eq!(closes(&s), "2026-01-06T06:00:00+01:00[Europe/Amsterdam]");
        }
        // Tuesday 06:00 local: closed again until Tuesday 22:00.
        let s = window_state(&w, at("2026-01-06T05:00:00Z"));
        assert_eq!(opens(&s), "2026-01-06T22:00:00+01:00[Europe/Amsterdam]");
        // The Friday window runs into Saturday; nothing opens at the weekend.
        let s = window_state(&w, at("2026-01-10T04:00:00Z"));
        assert_eq!(closes(&s), "2026-01-10T06:00:00+01:00[Europe/Amsterdam]");
        let s = window_state(&w, at("2026-01-10T12:00:00Z"));
        assert_eq!(opens(&s), "2026-01-12T22:00:00+01:00[Europe/Amsterdam]");
        assert_eq!(
            s.opens_text().as_deref(),
            Some("opens Mon 22:00 Europe/Amsterdam")
        );
    }

    #[test]
    fn the_start_is_inclusive_and_the_end_exclusive() {
        let w = [win(&[0], "01:00", "02:00", "UTC")];
        assert!(window_state(&w, at("2026-01-05T01:00:00Z")).is_open());
        assert!(window_state(&w, at("2026-01-05T01:59:59Z")).is_open());
        assert!(!window_state(&w, at("2026-01-05T02:00:00Z")).is_open());
        assert!(!window_state(&w, at("2026-01-05T00:59:59Z")).is_open());
    }

    #[test]
    fn equal_start_and_end_is_a_whole_day_and_24_00_ends_at_midnight() {
        let w = [win(&[5], "00:00", "00:00", "UTC")];
        assert!(window_state(&w, at("2026-01-10T00:00:00Z")).is_open());
        assert!(window_state(&w, at("2026-01-10T23:59:59Z")).is_open());
        assert!(!window_state(&w, at("2026-01-11T00:00:00Z")).is_open());
        let w = [win(&[0], "22:00", "24:00", "UTC")];
        let s = window_state(&w, at("2026-01-05T23:00:00Z"));
        assert_eq!(closes(&s), "2026-01-06T00:00:00+00:00[UTC]");
    }

    #[test]
    fn overlapping_windows_close_at_the_latest_end() {
        let w = [
            win(&[0], "20:00", "23:00", "UTC"),
            win(&[0], "22:00", "02:00", "UTC"),
        ];
        let s = window_state(&w, at("2026-01-05T22:30:00Z"));
        assert_eq!(closes(&s), "2026-01-06T02:00:00+00:00[UTC]");
    }

    #[test]
    fn windows_follow_the_zone_through_daylight_saving_changes() {
        // Europe/Amsterdam moves to summer time on Sunday 2026-03-29 at
        // 02:00 (to 03:00), and back on Sunday 2026-10-25 at 03:00 (to 02:00).
        let w = [win(&[6], "01:00", "04:00", "Europe/Amsterdam")];
        // Spring: 01:00 is still winter time (+01:00), 04:00 summer (+02:00):
        // the window lasts two hours of real time.
        let s = window_state(&w, at("2026-03-29T00:30:00Z"));
        assert_eq!(closes(&s), "2026-03-29T04:00:00+02:00[Europe/Amsterdam]");
        assert!(!window_state(&w, at("2026-03-29T02:00:00Z")).is_open());
        // Autumn: the same window lasts four hours of real time.
        assert!(window_state(&w, at("2026-10-25T02:30:00Z")).is_open());
        assert!(!window_state(&w, at("2026-10-25T03:00:00Z")).is_open());
        // A window that opens at a time the spring change skips opens at
        // the first instant after the gap (02:30 -> 03:30 summer time).
        let w = [win(&[6], "02:30", "05:00", "Europe/Amsterdam")];
        let s = window_state(&w, at("2026-03-28T12:00:00Z"));
        assert_eq!(opens(&s), "2026-03-29T03:30:00+02:00[Europe/Amsterdam]");
        // A window opening at a time that happens twice opens at the first.
        let w = [win(&[6], "02:30", "05:00", "Europe/Amsterdam")];
        let s = window_state(&w, at("2026-10-24T12:00:00Z"));
        assert_eq!(opens(&s), "2026-10-25T02:30:00+02:00[Europe/Amsterdam]");
        // Same local hours, different real hours either side of the change:
        // 22:00 in New York is 03:00 UTC in winter and 02:00 UTC in summer.
        let w = [win(
            &[0, 1, 2, 3, 4, 5, 6],
            "22:00",
            "23:00",
            "America/New_York",
        )];
        assert!(window_state(&w, at("2026-03-07T03:30:00Z")).is_open());
        assert!(!window_state(&w, at("2026-03-09T03:30:00Z")).is_open());
        assert!(window_state(&w, at("2026-03-09T02:30:00Z")).is_open());
    }

    #[test]
    fn clocks_parse_strictly() {
        assert_eq!(parse_clock("22:00", false), Ok(Time::constant(22, 0, 0, 0)));
        assert_eq!(parse_clock("7:05", false), Ok(Time::constant(7, 5, 0, 0)));
        assert_eq!(parse_clock("24:00", true), Ok(Time::midnight()));
        for bad in [
            "24:00", "25:00", "12:60", "12", "12:5", "noon", "", "-1:00", "12:00:00",
        ] {
            assert!(parse_clock(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn displays_as_written() {
        let w = win(WEEKDAYS, "22:00", "06:00", "Europe/Amsterdam");
        assert_eq!(
            w.to_string(),
            "mon,tue,wed,thu,fri 22:00-06:00 Europe/Amsterdam"
        );
    }

    #[test]
    fn simulated_clock_adds_seconds() {
        assert_eq!(
            after(at("2026-01-05T00:00:00Z"), 90.5),
            at("2026-01-05T00:01:30.5Z")
        );
    }
}
