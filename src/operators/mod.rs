//! Reusable timely and differential operators, each an extension trait in its own file.
//!
//! Operators know records, times and frontiers, never a particular job: jobs compose
//! them (see `crate::jobs`).

pub mod aggregate;
pub mod delivery;
pub mod fan_out;
pub mod fold;
pub mod ingest;
pub mod keyed;
pub mod round;
pub mod stamp;
pub mod sum_distinct;
pub mod sum_total;
#[cfg(test)]
pub mod testing;
pub mod time_order;
pub mod top;
pub mod updates;
pub mod watermark;
pub mod window;

pub use aggregate::{Accumulate, WindowAggregate, WindowFold};
pub use delivery::TrackDelivery;
pub use fan_out::{Branches, FanOut};
pub use fold::FoldAtEnd;
pub use ingest::Ingest;
pub use keyed::{KeyLogic, KeyedOrdered};
pub use stamp::StampBy;
pub use sum_distinct::SumDistinct;
pub use sum_total::SumTotal;
pub use time_order::InTimeOrder;
pub use top::{TopK, TopPerTime};
pub use updates::{Changes, ToUpdates};
pub use watermark::Watermark;
pub use window::Windowing;
