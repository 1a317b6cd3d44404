//! Where a detector's value range comes from: learned causally, or given as NAB gives it.

/// Where a detector's value range comes from.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Range {
    /// Learned causally from the values seen so far (the default: a live stream cannot
    /// know its range in advance).
    Learned,
    /// Given in advance, as NAB gives every detector each file's min and max.
    Given(f64, f64),
}

impl Range {
    /// Parses `MIN:MAX` (`MIN < MAX`, both finite).
    pub fn parse(text: &str) -> Result<Range, String> {
        let (lo, hi) = text.split_once(':').ok_or_else(|| format!("'{text}': expected MIN:MAX"))?;
        let number = |s: &str| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("'{text}': '{s}' is not a number"))
        };
        let (lo, hi) = (number(lo)?, number(hi)?);
        if lo >= hi {
            return Err(format!("'{text}': MIN must be below MAX"));
        }
        Ok(Range::Given(lo, hi))
    }
}
