//! Route handlers, one module per area; each talks to one business component
//! through its WIT interface.

pub mod admin;
pub mod assets;
pub mod config;
pub mod flags;
pub mod health;
pub mod maintenance;
pub mod metrics;
pub mod session;
