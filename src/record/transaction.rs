//! E-commerce transactions: the notebooks' CSV schema, its parser and a seeded generator.
//!
//! ```text
//! transaction_id,customer_id,product_category,product_price,quantity,timestamp,customer_age,customer_city,payment_method,total_amount
//! TXN_000001,CUST_04211,Books,412.07,3,2026-10-12T08:41:17Z,33,Bandung,PayPal,1236.21
//! ```

use std::borrow::Cow;

use rand::Rng;

use super::{LineFormat, ParseError, RowGenerator, Timeline, csv, event_time_in_range};
use crate::money::Cents;
use crate::time::{Millis, parse_iso8601_signed, write_iso8601};

/// The header line of a transactions CSV file.
pub const HEADER: &str = "transaction_id,customer_id,product_category,product_price,quantity,timestamp,customer_age,customer_city,payment_method,total_amount";

/// The product categories of the notebooks' data.
pub const CATEGORIES: [&str; 6] = ["Electronics", "Clothing", "Books", "Home", "Sports", "Beauty"];

/// The payment methods of the notebooks' data.
pub const PAYMENT_METHODS: [&str; 4] = ["Credit Card", "Debit Card", "PayPal", "Cash"];

/// Cities for generated customers.
pub const CITIES: [&str; 12] = [
    "Jakarta",
    "Surabaya",
    "Bandung",
    "Medan",
    "Semarang",
    "Makassar",
    "Palembang",
    "Tangerang",
    "Depok",
    "Bekasi",
    "Yogyakarta",
    "Denpasar",
];

/// Number of distinct generated customers.
pub const CUSTOMERS: u32 = 10_000;

/// One parsed transaction, borrowing its text from the input line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction<'a> {
    /// Unique transaction id, e.g. `TXN_000001`.
    pub transaction_id: Cow<'a, str>,
    /// Customer id, e.g. `CUST_04211`.
    pub customer_id: Cow<'a, str>,
    /// Product category, e.g. `Books`.
    pub product_category: Cow<'a, str>,
    /// Unit price.
    pub product_price: Cents,
    /// Units bought.
    pub quantity: u32,
    /// Event time.
    pub timestamp: Millis,
    /// Customer age in years.
    pub customer_age: u8,
    /// Customer city (may be empty).
    pub customer_city: Cow<'a, str>,
    /// Payment method, e.g. `PayPal`.
    pub payment_method: Cow<'a, str>,
    /// Amount paid.
    pub total_amount: Cents,
}

/// The transactions CSV format.
pub struct TransactionCsv;

fn non_empty<'a>(field: Cow<'a, str>, name: &'static str) -> Result<Cow<'a, str>, ParseError> {
    if field.trim().is_empty() { Err(ParseError::from(format!("empty {name}"))) } else { Ok(field) }
}

fn money(field: &str, name: &'static str) -> Result<Cents, ParseError> {
    Cents::parse(field.trim().as_bytes())
        .map_err(|e| ParseError::from(format!("bad {name} '{}': {e}", excerpt(field))))
}

fn integer<T: std::str::FromStr>(field: &str, name: &'static str) -> Result<T, ParseError> {
    field
        .trim()
        .parse()
        .map_err(|_| ParseError::from(format!("bad {name} '{}': not a valid integer", excerpt(field))))
}

fn excerpt(field: &str) -> &str {
    match field.char_indices().nth(40) {
        Some((at, _)) => &field[..at],
        None => field,
    }
}

impl LineFormat for TransactionCsv {
    type Parsed<'a> = Transaction<'a>;
    const NAME: &'static str = "transaction";

    fn is_header(line: &str) -> bool {
        csv::is_header(line, &[HEADER])
    }

    #[inline]
    fn parse(line: &str) -> Result<Transaction<'_>, ParseError> {
        let [id, customer, category, price, quantity, timestamp, age, city, payment, total] =
            csv::split::<10>(line).map_err(|found| match found {
                usize::MAX => ParseError::fixed("unterminated or misplaced quote"),
                n => ParseError::from(format!("wrong field count: expected 10, found {n}")),
            })?;
        let timestamp_ms = parse_iso8601_signed(timestamp.trim())
            .ok_or_else(|| ParseError::from(format!("bad timestamp '{}': not ISO 8601", excerpt(&timestamp))))
            .and_then(|t| event_time_in_range(t as i128, &timestamp))?;
        Ok(Transaction {
            product_price: money(&price, "product_price")?,
            quantity: integer(&quantity, "quantity")?,
            customer_age: integer(&age, "customer_age")?,
            total_amount: money(&total, "total_amount")?,
            timestamp: timestamp_ms,
            transaction_id: non_empty(id, "transaction_id")?,
            customer_id: non_empty(customer, "customer_id")?,
            product_category: non_empty(category, "product_category")?,
            customer_city: city,
            payment_method: non_empty(payment, "payment_method")?,
        })
    }

    #[inline]
    fn event_time(parsed: &Transaction<'_>) -> Millis {
        parsed.timestamp
    }
}

/// A deterministic transaction generator: row `i` depends only on `(seed, i)`.
///
/// Because rows are independent, any worker can generate any subset of them and the
/// union is the same file, byte for byte, on every machine.
#[derive(Clone, Debug)]
pub struct TransactionGen {
    seed: u64,
    timeline: Timeline,
    bursts: Option<Bursts>,
}

/// Injected velocity bursts: in every block of `every` rows, the first `size` rows belong
/// to one customer and follow each other `gap` milliseconds apart.
///
/// The block's customer and first time are drawn from `(seed, block)` only, so rows
/// still depend only on `(seed, index)`. With `size * gap` below a velocity window, each
/// block trips a `size`-in-window rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bursts {
    /// Rows per block; a burst starts every `every` rows.
    pub every: u64,
    /// Rows in each burst (at most `every`).
    pub size: u64,
    /// Milliseconds between a burst's consecutive rows.
    pub gap: u64,
}

/// The `gen transactions` flags that inject [`Bursts`].
#[derive(clap::Args, Clone, Debug)]
pub struct BurstArgs {
    /// Inject a velocity burst every N rows: the block's first --burst-size rows get
    /// one customer and times --burst-gap apart (deterministic per seed and row).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub burst_every: Option<u64>,
    /// Rows in each injected burst.
    #[arg(long, value_name = "N", default_value_t = 6, requires = "burst_every")]
    pub burst_size: u64,
    /// Time between a burst's rows.
    #[arg(long, value_name = "DURATION", default_value = "5s", requires = "burst_every")]
    pub burst_gap: crate::time::Duration,
}

impl BurstArgs {
    /// The bursts these flags ask for, if any.
    pub fn bursts(&self) -> Option<Bursts> {
        self.burst_every.map(|every| Bursts { every, size: self.burst_size, gap: self.burst_gap.millis() })
    }
}

impl TransactionGen {
    /// A generator for `seed` along `timeline`.
    pub fn new(seed: u64, timeline: Timeline) -> Self {
        TransactionGen { seed, timeline, bursts: None }
    }

    /// The same generator with velocity bursts injected.
    pub fn with_bursts(mut self, bursts: Bursts) -> Self {
        self.bursts = (bursts.every > 0 && bursts.size > 0)
            .then_some(Bursts { size: bursts.size.min(bursts.every), ..bursts });
        self
    }
}

impl RowGenerator for TransactionGen {
    fn header(&self) -> Option<Cow<'static, str>> {
        Some(HEADER.into())
    }

    fn write_row(&self, index: u64, out: &mut Vec<u8>) {
        let mut rng = super::row_rng(self.seed, index);
        let customer = rng.random_range(1..=CUSTOMERS);
        let category = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
        let price = rng.random_range(1_000i64..=100_000);
        let quantity = rng.random_range(1i64..=5);
        let age = rng.random_range(18u32..=70);
        let city = CITIES[rng.random_range(0..CITIES.len())];
        let payment = PAYMENT_METHODS[rng.random_range(0..PAYMENT_METHODS.len())];
        let mut timestamp = self.timeline.time_of(index, &mut rng);
        let mut customer = customer;
        if let Some(b) = self.bursts {
            let (block, offset) = (index / b.every, index % b.every);
            if offset < b.size {
                // A stream distinct from every row's: the seed's complement, per block.
                let mut block_rng = super::row_rng(!self.seed, block);
                customer = block_rng.random_range(1..=CUSTOMERS);
                let start = self.timeline.time_of(block * b.every, &mut block_rng);
                timestamp = start + offset * b.gap;
            }
        }
        let mut num = itoa::Buffer::new();
        out.extend_from_slice(b"TXN_");
        let id = num.format(index + 1);
        out.extend(std::iter::repeat_n(b'0', 6usize.saturating_sub(id.len())));
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b",CUST_");
        let c = num.format(customer);
        out.extend(std::iter::repeat_n(b'0', 5usize.saturating_sub(c.len())));
        out.extend_from_slice(c.as_bytes());
        out.push(b',');
        out.extend_from_slice(category.as_bytes());
        out.push(b',');
        Cents(price as i128).write(out);
        out.push(b',');
        out.extend_from_slice(num.format(quantity).as_bytes());
        out.push(b',');
        write_iso8601(out, timestamp);
        out.push(b',');
        out.extend_from_slice(num.format(age).as_bytes());
        out.push(b',');
        out.extend_from_slice(city.as_bytes());
        out.push(b',');
        out.extend_from_slice(payment.as_bytes());
        out.push(b',');
        Cents((price * quantity) as i128).write(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::DEFAULT_START;
    use crate::time::DAY_MS;

    #[test]
    fn generated_rows_parse_back_with_notebook_ranges() {
        let generator = TransactionGen::new(7, Timeline::default_history());
        let mut line = Vec::new();
        for i in 0..2000 {
            line.clear();
            generator.write_row(i, &mut line);
            let text = std::str::from_utf8(&line).unwrap();
            let t = TransactionCsv::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!((1000..=100_000).contains(&t.product_price.0));
            assert!((1..=5).contains(&t.quantity));
            assert!((18..=70).contains(&t.customer_age));
            assert_eq!(t.total_amount.0, t.product_price.0 * t.quantity as i128);
            assert!(CATEGORIES.contains(&&*t.product_category));
            assert!(PAYMENT_METHODS.contains(&&*t.payment_method));
            assert!(t.timestamp >= DEFAULT_START && t.timestamp < DEFAULT_START + 30 * DAY_MS);
        }
    }

    #[test]
    fn rows_depend_only_on_seed_and_index() {
        let a = TransactionGen::new(1, Timeline::default_history());
        let b = TransactionGen::new(1, Timeline::default_history());
        let (mut x, mut y) = (Vec::new(), Vec::new());
        a.write_row(12345, &mut x);
        b.write_row(12345, &mut y);
        assert_eq!(x, y);
        y.clear();
        TransactionGen::new(2, Timeline::default_history()).write_row(12345, &mut y);
        assert_ne!(x, y);
    }

    #[test]
    fn bursts_are_one_customer_close_in_time() {
        let bursts = Bursts { every: 100, size: 6, gap: 5_000 };
        let generator = TransactionGen::new(3, Timeline::default_history()).with_bursts(bursts);
        let row = |i| {
            let mut line = Vec::new();
            generator.write_row(i, &mut line);
            let text = String::from_utf8(line).unwrap();
            let t = TransactionCsv::parse(&text).unwrap();
            (t.customer_id.into_owned(), t.timestamp)
        };
        for block in [0u64, 7] {
            let first = row(block * 100);
            for k in 1..6 {
                let (customer, time) = row(block * 100 + k);
                assert_eq!(customer, first.0);
                assert_eq!(time, first.1 + k * 5_000);
            }
        }
        assert_ne!(row(0).0, row(700).0);
        // Rows outside bursts are the plain generator's.
        let plain = TransactionGen::new(3, Timeline::default_history());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        generator.write_row(50, &mut a);
        plain.write_row(50, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn rejects_name_the_problem() {
        let good = "TXN_1,CUST_1,Books,10.00,2,2026-10-01T00:00:00Z,30,Depok,Cash,20.00";
        assert!(TransactionCsv::parse(good).is_ok());
        let cases = [
            ("TXN_1,CUST_1,Books,10.00,2", "wrong field count"),
            ("TXN_1,CUST_1,Books,ten,2,2026-10-01T00:00:00Z,30,Depok,Cash,20.00", "bad product_price"),
            ("TXN_1,CUST_1,Books,10.00,2,yesterday,30,Depok,Cash,20.00", "bad timestamp"),
            ("TXN_1,CUST_1,Books,10.00,x,2026-10-01T00:00:00Z,30,Depok,Cash,20.00", "bad quantity"),
            (",CUST_1,Books,10.00,2,2026-10-01T00:00:00Z,30,Depok,Cash,20.00", "empty transaction_id"),
        ];
        for (line, reason) in cases {
            let err = TransactionCsv::parse(line).unwrap_err();
            assert!(err.0.starts_with(reason), "{line}: {err}");
        }
        assert!(TransactionCsv::is_header(HEADER));
        assert!(TransactionCsv::is_header(&format!("\u{feff}{HEADER}\r")));
    }

    #[test]
    fn event_times_outside_1970_to_9999_are_rejected_as_out_of_range() {
        let at = |time: &str| format!("TXN_1,CUST_1,Books,10.00,2,{time},30,Depok,Cash,20.00");
        let parse = |time: &str| TransactionCsv::parse(&at(time)).map(|t| t.timestamp);
        assert_eq!(parse("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse("9999-12-31T23:59:59.999Z"), Ok(crate::record::MAX_EVENT_TIME));
        for time in ["1969-12-31T23:59:59Z", "1970-01-01T00:30:00+01:00", "9999-12-31T23:00:00-05:00"] {
            let err = parse(time).unwrap_err();
            assert!(err.0.starts_with("timestamp out of range"), "{time}: {err}");
        }
    }
}
