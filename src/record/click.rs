//! Clickstream events: the notebook's Kafka demo as JSON lines, their parser and a
//! seeded generator.
//!
//! ```text
//! {"event_id": "EVENT_000001", "event_type": "purchase", "customer_id": "CUST_042", "product_id": "PROD_137", "timestamp": "2026-10-12T08:41:17Z", "amount": 123.45}
//! {"event_id": "EVENT_000002", "event_type": "view", "customer_id": "CUST_007", "product_id": "PROD_311", "timestamp": "2026-10-03T17:02:44Z", "amount": null}
//! ```
//!
//! # What a valid line is
//!
//! * One JSON object (RFC 8259) per line, optionally after a UTF-8 byte order mark.
//!   Anything else is rejected as malformed JSON, with the byte where it went wrong.
//! * All six fields are present, each once. Other fields are allowed and ignored, so
//!   producers can add fields without breaking the job.
//! * `event_id`, `customer_id` and `product_id` are non-empty strings.
//! * `event_type` is one of `purchase`, `cart_add`, `view`, `search`.
//! * `timestamp` is an ISO 8601 string (`2026-10-12T08:41:17Z`, with an offset, or
//!   without one as Python's `isoformat()` writes it, which is taken as UTC), or a
//!   whole number of milliseconds since the Unix epoch as JavaScript and Kafka write it.
//!   A number below 10^11 would be before 1973 as milliseconds and is almost certainly
//!   epoch *seconds*, so it is rejected rather than silently misplaced. Either way the
//!   time must lie in 1970-01-01..9999-12-31 UTC ([`super::MAX_EVENT_TIME`]), or the
//!   line is rejected as `timestamp out of range`.
//! * `amount` is `null` or a non-negative JSON number that is a whole number of cents.
//!   The number's text is converted exactly (`12.5`, `12.50`, `1.25e1` and `1250e-2`
//!   are the same amount); it never passes through a float. `12.345` is rejected.
//!   A purchase may have a `null` amount (it counts, but adds no revenue, as in the
//!   notebook's consumer). Other event types may carry an amount, such as a cart
//!   value, which is checked the same way but is not revenue.
//!
//! The parser reads the flat object with the JSON scanner of [`super::json`]: strings
//! without escapes are borrowed from the line, so the hot path does not allocate.

use std::borrow::Cow;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::json::Scan;
use super::{LineFormat, ParseError, RowGenerator, Timeline, event_time_in_range};
use crate::money::Cents;
use crate::time::{Millis, parse_iso8601_signed, write_iso8601};

/// Number of distinct generated customers, `CUST_001` to `CUST_100` as in the notebook.
pub const CLICK_CUSTOMERS: u32 = 100;
/// Number of distinct generated products, `PROD_001` to `PROD_500` as in the notebook.
pub const PRODUCTS: u32 = 500;
/// Smallest generated purchase amount in cents (the notebook draws 10 to 300).
pub const MIN_AMOUNT: i64 = 1_000;
/// Largest generated purchase amount in cents.
pub const MAX_AMOUNT: i64 = 30_000;

/// Epoch-millisecond timestamps below this are taken to be epoch seconds and rejected.
pub const MIN_EPOCH_MILLIS: u64 = 100_000_000_000;

/// What a customer did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// Bought a product.
    Purchase,
    /// Put a product in the cart.
    CartAdd,
    /// Looked at a product.
    View,
    /// Searched.
    Search,
}

impl EventType {
    /// All event types, in the notebook's order.
    pub const ALL: [EventType; 4] =
        [EventType::Purchase, EventType::CartAdd, EventType::View, EventType::Search];

    /// The name used in the data, such as `cart_add`.
    pub fn name(self) -> &'static str {
        match self {
            EventType::Purchase => "purchase",
            EventType::CartAdd => "cart_add",
            EventType::View => "view",
            EventType::Search => "search",
        }
    }

    /// The event type called `name`, if any.
    #[inline]
    pub fn from_name(name: &str) -> Option<EventType> {
        match name {
            "purchase" => Some(EventType::Purchase),
            "cart_add" => Some(EventType::CartAdd),
            "view" => Some(EventType::View),
            "search" => Some(EventType::Search),
            _ => None,
        }
    }
}

/// One parsed click event, borrowing its text from the input line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Click<'a> {
    /// Unique event id, e.g. `EVENT_000001`.
    pub event_id: Cow<'a, str>,
    /// What happened.
    pub event_type: EventType,
    /// Customer id, e.g. `CUST_042`.
    pub customer_id: Cow<'a, str>,
    /// Product id, e.g. `PROD_137`.
    pub product_id: Cow<'a, str>,
    /// Event time.
    pub timestamp: Millis,
    /// The amount, if the event carries one.
    pub amount: Option<Cents>,
}

impl Click<'_> {
    /// The revenue this event brings: a purchase's amount, otherwise nothing.
    #[inline]
    pub fn revenue(&self) -> Cents {
        match (self.event_type, self.amount) {
            (EventType::Purchase, Some(amount)) => amount,
            _ => Cents(0),
        }
    }
}

/// The click events JSON-lines format.
pub struct ClickJson;

impl LineFormat for ClickJson {
    type Parsed<'a> = Click<'a>;
    const NAME: &'static str = "click event";

    fn is_header(_line: &str) -> bool {
        false
    }

    #[inline]
    fn parse(line: &str) -> Result<Click<'_>, ParseError> {
        parse_click(line)
    }

    #[inline]
    fn event_time(parsed: &Click<'_>) -> Millis {
        parsed.timestamp
    }
}

/// The fields of a click event, in schema order; their index is their bit in `seen`.
const FIELDS: [&str; 6] = ["event_id", "event_type", "customer_id", "product_id", "timestamp", "amount"];

fn parse_click(line: &str) -> Result<Click<'_>, ParseError> {
    let mut s = Scan::line_object(line)?;
    let mut event_id = Cow::Borrowed("");
    let mut event_type = EventType::View;
    let mut customer_id = Cow::Borrowed("");
    let mut product_id = Cow::Borrowed("");
    let mut timestamp = 0;
    let mut amount = None;
    s.object(&FIELDS, |s, _, field| {
        match field {
            None => s.skip_value(1)?,
            Some(0) => event_id = s.id("event_id")?,
            Some(1) => event_type = s.event_type()?,
            Some(2) => customer_id = s.id("customer_id")?,
            Some(3) => product_id = s.id("product_id")?,
            Some(4) => timestamp = s.timestamp()?,
            Some(_) => amount = s.amount()?,
        }
        Ok(())
    })?;
    Ok(Click { event_id, event_type, customer_id, product_id, timestamp, amount })
}

/// The click event's own fields, read from a [`Scan`]; ids, names and timestamps are read the
/// same way by the other JSON-lines kinds ([`super::playback`]).
pub(super) trait ClickFields<'a> {
    fn id(&mut self, field: &'static str) -> Result<Cow<'a, str>, ParseError>;
    fn event_type(&mut self) -> Result<EventType, ParseError>;
    fn named<T>(
        &mut self,
        field: &str,
        from_name: fn(&str) -> Option<T>,
        expected: &str,
    ) -> Result<T, ParseError>;
    fn timestamp(&mut self) -> Result<Millis, ParseError>;
    fn amount(&mut self) -> Result<Option<Cents>, ParseError>;
}

/// A value's first bytes, for messages.
fn excerpt(text: &str) -> String {
    crate::diag::excerpt(text.as_bytes(), 40)
}

impl<'a> ClickFields<'a> for Scan<'a> {
    #[inline]
    fn id(&mut self, field: &'static str) -> Result<Cow<'a, str>, ParseError> {
        if self.peek() != Some(b'"') {
            return Err(self.wrong_type(field, "a string"));
        }
        let id = self.string()?;
        // Only text that starts with a space (or is non-ASCII) can be blank.
        let plain = id.as_bytes().first().is_some_and(|b| b.is_ascii_graphic());
        if !plain && id.trim().is_empty() {
            return Err(ParseError::from(format!("empty {field}")));
        }
        Ok(id)
    }

    #[inline]
    fn event_type(&mut self) -> Result<EventType, ParseError> {
        self.named("event_type", EventType::from_name, "purchase, cart_add, view or search")
    }

    /// A string field holding one of a fixed set of names.
    fn named<T>(
        &mut self,
        field: &str,
        from_name: fn(&str) -> Option<T>,
        expected: &str,
    ) -> Result<T, ParseError> {
        if self.peek() != Some(b'"') {
            return Err(self.wrong_type(field, "a string"));
        }
        let name = self.string()?;
        from_name(&name).ok_or_else(|| {
            ParseError::from(format!("unknown {field} '{}' (expected {expected})", excerpt(&name)))
        })
    }

    #[inline]
    fn timestamp(&mut self) -> Result<Millis, ParseError> {
        match self.peek() {
            Some(b'"') => {
                let text = self.string()?;
                parse_iso8601_signed(&text)
                    .or_else(|| parse_iso8601_signed(text.trim()))
                    .ok_or_else(|| {
                        ParseError::from(format!("bad timestamp '{}': not ISO 8601", excerpt(&text)))
                    })
                    .and_then(|t| event_time_in_range(t as i128, &text))
            }
            Some(b'-' | b'0'..=b'9') => {
                let n = self.number()?;
                if !n.frac.is_empty() || n.exp != 0 {
                    return Err(ParseError::from(format!(
                        "bad timestamp {}: expected whole epoch milliseconds",
                        excerpt(n.text)
                    )));
                }
                // A whole number: any count of digits is a time, however far out of range.
                let magnitude =
                    n.int.iter().try_fold(0i128, |v, d| v.checked_mul(10)?.checked_add((d - b'0') as i128));
                let ms = event_time_in_range(
                    magnitude.map_or(i128::MAX, |m| if n.negative { -m } else { m }),
                    n.text,
                )?;
                if ms < MIN_EPOCH_MILLIS {
                    return Err(ParseError::from(format!(
                        "bad timestamp {}: looks like epoch seconds; expected milliseconds",
                        n.text
                    )));
                }
                Ok(ms)
            }
            _ => Err(self.wrong_type("timestamp", "an ISO 8601 string or epoch milliseconds")),
        }
    }

    #[inline]
    fn amount(&mut self) -> Result<Option<Cents>, ParseError> {
        match self.peek() {
            Some(b'n') => self.literal(b"null").map(|()| None),
            Some(b'-' | b'0'..=b'9') => {
                let n = self.number()?;
                match n.fixed(2).map(|c| Cents(c as i128)).and_then(Cents::checked_range) {
                    Ok(c) if c.0 < 0 => Err(ParseError::from(format!("negative amount {}", excerpt(n.text)))),
                    Ok(c) => Ok(Some(c)),
                    Err(e) => Err(ParseError::from(format!("bad amount {}: {e}", excerpt(n.text)))),
                }
            }
            _ => Err(self.wrong_type("amount", "a number or null")),
        }
    }
}

/// Writes cents the way Python prints a float rounded to two decimals, as the
/// notebook's producer does: `12.0`, `12.5`, `12.55`.
fn write_python_amount(out: &mut Vec<u8>, cents: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(cents / 100).as_bytes());
    let c = (cents % 100) as u8;
    out.push(b'.');
    out.push(b'0' + c / 10);
    if !c.is_multiple_of(10) {
        out.push(b'0' + c % 10);
    }
}

fn write_padded(out: &mut Vec<u8>, prefix: &[u8], n: u64, width: usize) {
    out.extend_from_slice(prefix);
    let mut num = itoa::Buffer::new();
    let digits = num.format(n);
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(digits.len())));
    out.extend_from_slice(digits.as_bytes());
}

/// A deterministic click event generator: row `i` depends only on `(seed, i)`.
///
/// Event types are equally likely, as in the notebook's `random.choice`. Purchases
/// carry an amount from 10.00 to 300.00; other events have `"amount": null`. Lines are
/// written as Python's `json.dumps` writes them, with `", "` and `": "` separators.
#[derive(Clone, Debug)]
pub struct ClickGen {
    seed: u64,
    timeline: Timeline,
}

impl ClickGen {
    /// A generator for `seed` along `timeline`.
    pub fn new(seed: u64, timeline: Timeline) -> Self {
        ClickGen { seed, timeline }
    }
}

impl RowGenerator for ClickGen {
    fn header(&self) -> Option<Cow<'static, str>> {
        None
    }

    fn write_row(&self, index: u64, out: &mut Vec<u8>) {
        let mut rng = super::row_rng(self.seed, index);
        let event_type = EventType::ALL[rng.random_range(0..EventType::ALL.len())];
        let customer = rng.random_range(1..=CLICK_CUSTOMERS);
        let product = rng.random_range(1..=PRODUCTS);
        let amount = (event_type == EventType::Purchase).then(|| rng.random_range(MIN_AMOUNT..=MAX_AMOUNT));
        let timestamp = self.timeline.time_of(index, &mut rng);
        write_padded(out, b"{\"event_id\": \"EVENT_", index + 1, 6);
        out.extend_from_slice(b"\", \"event_type\": \"");
        out.extend_from_slice(event_type.name().as_bytes());
        write_padded(out, b"\", \"customer_id\": \"CUST_", customer as u64, 3);
        write_padded(out, b"\", \"product_id\": \"PROD_", product as u64, 3);
        out.extend_from_slice(b"\", \"timestamp\": \"");
        write_iso8601(out, timestamp);
        out.extend_from_slice(b"\", \"amount\": ");
        match amount {
            Some(cents) => write_python_amount(out, cents),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::DEFAULT_START;
    use crate::time::DAY_MS;

    const GOOD: &str = r#"{"event_id": "E1", "event_type": "purchase", "customer_id": "C1", "product_id": "P1", "timestamp": "2026-10-01T00:00:00Z", "amount": 12.5}"#;

    fn with(field: &str, value: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        let mut parts = Vec::new();
        for f in FIELDS {
            let text = if f == field { value.to_owned() } else { v[f].to_string() };
            parts.push(format!("\"{f}\": {text}"));
        }
        format!("{{{}}}", parts.join(", "))
    }

    fn amount(text: &str) -> Result<Option<i128>, String> {
        ClickJson::parse(&with("amount", text)).map(|c| c.amount.map(|a| a.0)).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_the_notebook_shape_without_allocating() {
        let c = ClickJson::parse(GOOD).unwrap();
        assert_eq!(c.event_type, EventType::Purchase);
        assert!(matches!(c.event_id, Cow::Borrowed("E1")));
        assert!(matches!(c.product_id, Cow::Borrowed("P1")));
        assert_eq!(c.timestamp, DEFAULT_START);
        assert_eq!(c.amount, Some(Cents(1250)));
        assert_eq!(c.revenue(), Cents(1250));
        let compact = GOOD.replace(": ", ":").replace(", ", ",");
        assert_eq!(ClickJson::parse(&compact).unwrap(), c);
        let spaced = format!(" \t{}\r ", GOOD.replace("\": ", "\"\t:\n ").replace(", \"", " ,\r\n\""));
        assert_eq!(ClickJson::parse(&spaced).unwrap().amount, c.amount);
        assert_eq!(ClickJson::parse(&format!("\u{feff}{GOOD}")).unwrap(), c);
    }

    #[test]
    fn amounts_are_exact_cents() {
        assert_eq!(amount("12.5"), Ok(Some(1250)));
        assert_eq!(amount("12.50"), Ok(Some(1250)));
        assert_eq!(amount("12.500000"), Ok(Some(1250)));
        assert_eq!(amount("1.25e1"), Ok(Some(1250)));
        assert_eq!(amount("1250E-2"), Ok(Some(1250)));
        assert_eq!(amount("125000e-4"), Ok(Some(1250)));
        assert_eq!(amount("0.01"), Ok(Some(1)));
        assert_eq!(amount("0.1e-1"), Ok(Some(1)));
        assert_eq!(amount("0"), Ok(Some(0)));
        assert_eq!(amount("-0.0"), Ok(Some(0)));
        assert_eq!(amount("0e999999999999"), Ok(Some(0)));
        assert_eq!(amount("null"), Ok(None));
        // Exact up to the documented bound, ten trillion (see crate::money).
        assert_eq!(amount("1e13"), Ok(Some(crate::money::MAX_AMOUNT.0)));
        assert_eq!(amount("9999999999999.99"), Ok(Some(crate::money::MAX_AMOUNT.0 - 1)));
        assert_eq!(amount("0.30"), Ok(Some(30)));
        let err = |text: &str| amount(text).unwrap_err();
        assert!(err("12.345").contains("more than two decimals"), "{}", err("12.345"));
        assert!(err("1e-3").contains("more than two decimals"));
        assert!(err("1e-999999999").contains("more than two decimals"));
        assert!(err("92233720368547758.07").contains("out of range"));
        assert!(err("10000000000000.01").contains("out of range"));
        assert!(err("1e17").contains("out of range"));
        assert!(err("1e99999999999").contains("out of range"));
        assert!(err("-5.00").starts_with("negative amount -5.00"));
        assert!(err("\"12.50\"").starts_with("amount must be a number or null, found a string"));
        assert!(err("true").contains("found a boolean"));
        for bad in ["01", "1.", ".5", "+1", "1e", "1e+", "--1", "0x10", "NaN", "1.2.3"] {
            assert!(err(bad).starts_with("malformed JSON"), "{bad}: {}", err(bad));
        }
    }

    #[test]
    fn timestamps_are_iso_or_epoch_millis() {
        let time = |text: &str| {
            ClickJson::parse(&with("timestamp", text)).map(|c| c.timestamp).map_err(|e| e.to_string())
        };
        assert_eq!(time("\"2026-10-01T00:00:00Z\""), Ok(DEFAULT_START));
        assert_eq!(time("\"2026-10-01T07:00:00+07:00\""), Ok(DEFAULT_START));
        assert_eq!(time("\"2026-10-01T00:00:00.123456\""), Ok(DEFAULT_START + 123));
        assert_eq!(time("1790812800000"), Ok(DEFAULT_START));
        assert_eq!(time("\"2026-10-01T00:00:00\\u005a\""), Ok(DEFAULT_START));
        let err = |text: &str| time(text).unwrap_err();
        assert!(err("1790812800").contains("looks like epoch seconds"));
        assert!(err("1790812800000.5").contains("whole epoch milliseconds"));
        assert!(err("-1790812800000").starts_with("timestamp out of range"));
        assert!(err("\"yesterday\"").starts_with("bad timestamp 'yesterday': not ISO 8601"));
        assert!(err("\"2026-02-30T00:00:00Z\"").starts_with("bad timestamp"));
        assert!(err("null").starts_with("timestamp must be an ISO 8601 string"));
    }

    #[test]
    fn event_times_outside_1970_to_9999_are_rejected_as_out_of_range() {
        let time = |text: &str| ClickJson::parse(&with("timestamp", text)).map(|c| c.timestamp);
        let max = crate::record::MAX_EVENT_TIME;
        assert_eq!(time(&max.to_string()), Ok(max));
        assert_eq!(time("\"9999-12-31T23:59:59.999Z\""), Ok(max));
        for text in [
            // The value that wrapped a live job's window end.
            "18446744073709551615",
            "99999999999999999999999",
            "253402300800000",
            "-1",
            "\"1969-12-31T23:59:59Z\"",
            "\"9999-12-31T23:59:59-00:01\"",
        ] {
            let err = time(text).unwrap_err();
            assert!(err.0.starts_with("timestamp out of range"), "{text}: {err}");
        }
    }

    #[test]
    fn rejects_name_the_problem() {
        let missing = GOOD.replace(r#", "amount": 12.5"#, "");
        let cases = [
            (missing.as_str().to_owned(), "missing field 'amount'"),
            (GOOD.replace("\"E1\"", "\"E1\", \"event_id\": \"E2\""), "duplicate field 'event_id'"),
            (with("event_type", "\"click\""), "unknown event_type 'click'"),
            (with("event_type", "\"Purchase\""), "unknown event_type"),
            (with("event_type", "3"), "event_type must be a string, found a number"),
            (with("customer_id", "17"), "customer_id must be a string, found a number"),
            (with("event_id", "\"  \""), "empty event_id"),
            (with("product_id", "[\"P1\"]"), "product_id must be a string, found an array"),
            ("".into(), "blank line"),
            ("[1, 2]".into(), "expected a JSON object, found an array"),
            ("{}".into(), "missing field 'event_id'"),
            (GOOD[..GOOD.len() - 1].into(), "malformed JSON at end of line: expected ',' or '}'"),
            (GOOD.replace("\"C1\"", "\"C1"), "malformed JSON"),
            (format!("{GOOD} x"), "malformed JSON at byte"),
            (format!("{GOOD}{GOOD}"), "malformed JSON at byte"),
            (GOOD.replace("\"P1\"", "'P1'"), "malformed JSON"),
            (GOOD.replace("\"P1\"", "\"P\u{1}1\""), "control character"),
            (GOOD.replace("\"P1\"", "\"P\\x1\""), "invalid escape"),
            (GOOD.replace("\"P1\"", "\"\\ud800\""), "unpaired surrogate"),
            (GOOD.replace(", \"amount\"", ", \"extra\": [1, {\"a\": tru}], \"amount\""), "malformed JSON"),
            (GOOD.replace(", \"amount\"", ",, \"amount\""), "expected a field name"),
            (GOOD.replace("12.5}", "12.5,}"), "expected a field name"),
        ];
        for (line, reason) in &cases {
            let err = ClickJson::parse(line).unwrap_err();
            assert!(err.0.contains(reason), "{line}: {err} (wanted {reason})");
        }
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let err = ClickJson::parse(&with("amount", "null").replace("}", &format!(", \"x\": {deep}}}")))
            .unwrap_err();
        assert!(err.0.contains("nested too deeply"), "{err}");
    }

    #[test]
    fn extra_fields_escapes_and_other_amounts_are_accepted() {
        let extra = GOOD.replace(
            ", \"amount\"",
            ", \"session\": {\"id\": [1, 2.5e3, true, false, null, \"x\\\"y\"]}, \"amount\"",
        );
        assert_eq!(ClickJson::parse(&extra).unwrap(), ClickJson::parse(GOOD).unwrap());
        let escaped = with("customer_id", r#""C\u00e9\"\\\/\n\ud83d\ude00""#);
        assert_eq!(ClickJson::parse(&escaped).unwrap().customer_id, "Cé\"\\/\n😀");
        assert_eq!(
            ClickJson::parse(&with("event_type", r#""cart\u005fadd""#)).unwrap().event_type,
            EventType::CartAdd
        );
        // A cart value on a cart_add is allowed but is not revenue.
        let cart_line = with("event_type", "\"cart_add\"");
        let cart = ClickJson::parse(&cart_line).unwrap();
        assert_eq!((cart.amount, cart.revenue()), (Some(Cents(1250)), Cents(0)));
        let free_line = with("amount", "null");
        let free = ClickJson::parse(&free_line).unwrap();
        assert_eq!((free.event_type, free.revenue()), (EventType::Purchase, Cents(0)));
    }

    #[test]
    fn generated_rows_are_valid_json_in_the_notebook_shape() {
        let generator = ClickGen::new(7, Timeline::default_history());
        let mut line = Vec::new();
        let mut seen = [0u32; 4];
        for i in 0..4000 {
            line.clear();
            generator.write_row(i, &mut line);
            let text = std::str::from_utf8(&line).unwrap();
            let c = ClickJson::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let v: std::collections::BTreeMap<String, &serde_json::value::RawValue> =
                serde_json::from_str(text).unwrap();
            assert_eq!(v.len(), 6);
            assert_eq!(v["event_type"].get(), format!("\"{}\"", c.event_type.name()));
            assert_eq!(c.event_id, format!("EVENT_{:06}", i + 1));
            seen[c.event_type as usize] += 1;
            match c.event_type {
                EventType::Purchase => {
                    let a = c.amount.unwrap().0;
                    assert!((MIN_AMOUNT as i128..=MAX_AMOUNT as i128).contains(&a));
                    // Python's float repr of the same value, the notebook's shape.
                    let (whole, frac) = v["amount"].get().split_once('.').unwrap();
                    assert_eq!(whole, (a / 100).to_string());
                    assert!(frac.len() <= 2 && (frac.len() == 1 || !frac.ends_with('0')));
                    assert_eq!(format!("{frac:0<2}"), format!("{:02}", a % 100));
                }
                _ => assert!(c.amount.is_none() && v["amount"].get() == "null"),
            }
            let customer: u32 = c.customer_id.strip_prefix("CUST_").unwrap().parse().unwrap();
            let product: u32 = c.product_id.strip_prefix("PROD_").unwrap().parse().unwrap();
            assert!((1..=CLICK_CUSTOMERS).contains(&customer) && (1..=PRODUCTS).contains(&product));
            assert!(c.timestamp >= DEFAULT_START && c.timestamp < DEFAULT_START + 30 * DAY_MS);
        }
        assert!(seen.iter().all(|&n| n > 900), "{seen:?}");
    }

    /// Random edits of generated lines: whenever serde_json rejects a line, so does the
    /// scanner, and whenever both accept one, they read the same values.
    #[test]
    fn agrees_with_serde_json_on_mutated_lines() {
        use rand::SeedableRng;
        let generator = ClickGen::new(3, Timeline::default_history());
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(11);
        const BYTES: &[u8] = b"{}[]\",:.-+eE0123456789 \\unlrtfa\x01";
        let (mut accepted, mut rejected) = (0, 0);
        for i in 0..30_000 {
            let mut line = Vec::new();
            generator.write_row(i, &mut line);
            for _ in 0..rng.random_range(1..=2) {
                let at = rng.random_range(0..line.len());
                let byte = BYTES[rng.random_range(0..BYTES.len())];
                match rng.random_range(0..3) {
                    0 => line[at] = byte,
                    1 => line.insert(at, byte),
                    _ => drop(line.remove(at)),
                }
            }
            let text = String::from_utf8(line).unwrap();
            let ours = ClickJson::parse(&text);
            match serde_json::from_str::<serde_json::Value>(&text) {
                Err(_) => assert!(ours.is_err(), "serde_json rejects, we accept: {text}"),
                Ok(v) => match ours {
                    Err(e) => {
                        rejected += 1;
                        assert!(
                            !e.0.starts_with("malformed JSON") && (v.is_object() || !e.0.contains("object")),
                            "serde_json accepts, we call it malformed: {text}: {e}"
                        );
                    }
                    Ok(c) => {
                        accepted += 1;
                        assert_eq!(v["event_id"], *c.event_id, "{text}");
                        assert_eq!(v["customer_id"], *c.customer_id, "{text}");
                        assert_eq!(v["product_id"], *c.product_id, "{text}");
                        assert_eq!(v["event_type"], c.event_type.name(), "{text}");
                        assert_eq!(v["amount"].is_null(), c.amount.is_none(), "{text}");
                    }
                },
            }
        }
        assert!(accepted > 1000 && rejected > 100, "{accepted} {rejected}");
    }

    #[test]
    fn python_amounts() {
        let w = |c| {
            let mut out = Vec::new();
            write_python_amount(&mut out, c);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            (w(1000), w(1050), w(1055), w(30000), w(1001)),
            ("10.0".into(), "10.5".into(), "10.55".into(), "300.0".into(), "10.01".into())
        );
    }
}
