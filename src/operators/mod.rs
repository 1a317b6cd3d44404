//! Reusable timely and differential operators, each an extension trait.

pub mod aggregate;
pub mod delivery;
pub mod ingest;
pub mod stamp;
pub mod top;
pub mod updates;
pub mod velocity;
pub mod window;

pub use aggregate::WindowAggregate;
pub use delivery::TrackDelivery;
pub use ingest::Ingest;
pub use stamp::StampBy;
pub use updates::{Changes, ToUpdates};
pub use velocity::Velocity;
pub use window::Windowing;
