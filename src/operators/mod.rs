//! Reusable timely and differential operators, each an extension trait.

pub mod aggregate;
pub mod delivery;
pub mod ingest;
pub mod updates;
pub mod window;

pub use aggregate::WindowAggregate;
pub use delivery::TrackDelivery;
pub use ingest::Ingest;
pub use updates::ToUpdates;
pub use window::Windowing;
