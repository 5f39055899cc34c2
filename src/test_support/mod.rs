//! Test doubles and the test-only YAML editor, compiled only for tests or with the
//! `test-support` feature; `cargo build` of the product leaves them out.

pub mod fakes;
pub mod yaml_editor;
