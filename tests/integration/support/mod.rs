pub mod prometheus;
pub mod traffic;
