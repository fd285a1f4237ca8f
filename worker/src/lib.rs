//! The Weft worker: the `Tool` trait, the tool registry, built-in tools, and executors
//! consuming tasks from NATS JetStream. (Runtime issue; not built yet.)
