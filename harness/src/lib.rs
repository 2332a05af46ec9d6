//! Measurements that need whole processes or a server, not micro-benchmarks: each
//! Lambda binary's cold start and invocations through a Runtime API emulator
//! ([`cold`]), a bounded load on the local stack's webhook route ([`load`]), and the
//! AWS bill per million leads that follows from what was measured ([`cost`]).

pub mod cold;
pub mod cost;
pub mod double;
pub mod load;
