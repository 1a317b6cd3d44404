//! Reusable timely and differential operators, each an extension trait.

pub mod aggregate;
pub mod ingest;
pub mod stamp;
pub mod updates;
pub mod window;

pub use aggregate::WindowAggregate;
pub use ingest::Ingest;
pub use stamp::StampBy;
pub use updates::ToUpdates;
pub use window::Windowing;
pub mod velocity;
pub use velocity::Velocity;
