//! NOR-flash backend for `durability` (stub until its own issue lands).
#![no_std]
#![forbid(unsafe_code)]
