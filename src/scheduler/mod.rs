//! The `baton-scheduler` service: the maintenance loops of every configured queue (from the
//! library, [`crate::Maintenance`]), cron entries, and the dashboard with its metrics.

pub mod cron;
pub mod observe;
pub mod service;
pub mod web;
